//! The proxy: hyper services for forward and reverse listeners. It only wires the pipeline:
//! resolve → locate → stream through the classifier → decide → forward or refuse → audit.
