//! `Content-Encoding` decoding (RFC 9110 §8.4): gzip/x-gzip, deflate (zlib, and raw deflate
//! as some servers send it), br, identity, and comma-separated chains of them. Streaming with
//! fixed buffers; the decoded/encoded ratio is watched as output appears so that a
//! decompression bomb is stopped long before it is expanded.

use std::io::Write;

use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};
use flate2::write::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

use super::Uninspectable;

/// Output chunk of the brotli layer (the flate2 writers bound theirs at 32 KiB).
const OUT_CHUNK: usize = 16 * 1024;
/// Below this much decoded output the ratio is not judged (small bodies compress well).
const BOMB_FLOOR: u64 = 1024 * 1024;

/// Why feeding stopped: the body is uninspectable, or the consumer wants no more.
pub enum Stop {
    Uninspectable(Uninspectable),
    Consumer,
}

type Sink<'a> = dyn FnMut(&[u8]) -> Result<(), Stop> + 'a;

enum Layer {
    Gzip(MultiGzDecoder<Vec<u8>>),
    Zlib(ZlibDecoder<Vec<u8>>),
    RawDeflate(DeflateDecoder<Vec<u8>>),
    /// `deflate` before its first two bytes tell zlib from raw deflate.
    DeflateSniff {
        seen: [u8; 2],
        n: usize,
    },
    Brotli {
        state: Box<BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>>,
        out: Box<[u8]>,
        done: bool,
    },
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> Stop {
    Stop::Uninspectable(Uninspectable::CorruptEncoding(format!(
        "{what} stream does not decode ({e}); the sender's Content-Encoding header does not match the body"
    )))
}

impl Layer {
    fn feed(&mut self, input: &[u8], out: &mut Sink<'_>) -> Result<(), Stop> {
        match self {
            Layer::Gzip(d) => write_all(d, input, "gzip", out),
            Layer::Zlib(d) => write_all(d, input, "deflate", out),
            Layer::RawDeflate(d) => write_all(d, input, "deflate", out),
            Layer::DeflateSniff { seen, n } => {
                let mut i = 0;
                while *n < 2 && i < input.len() {
                    seen[*n] = input[i];
                    *n += 1;
                    i += 1;
                }
                if *n < 2 {
                    return Ok(());
                }
                // RFC 1950: CM = 8 in the low nibble of CMF and CMF·256 + FLG ≡ 0 (mod 31).
                let head = *seen;
                let zlib =
                    head[0] & 0x0F == 8 && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
                *self = if zlib {
                    Layer::Zlib(ZlibDecoder::new(Vec::with_capacity(32 * 1024)))
                } else {
                    Layer::RawDeflate(DeflateDecoder::new(Vec::with_capacity(32 * 1024)))
                };
                self.feed(&head, out)?;
                self.feed(&input[i..], out)
            }
            Layer::Brotli {
                state,
                out: buf,
                done,
            } => {
                let mut avail_in = input.len();
                let mut in_off = 0;
                while !*done {
                    let mut avail_out = buf.len();
                    let mut out_off = 0;
                    let mut total = 0;
                    let r = BrotliDecompressStream(
                        &mut avail_in,
                        &mut in_off,
                        input,
                        &mut avail_out,
                        &mut out_off,
                        buf,
                        &mut total,
                        state,
                    );
                    if out_off > 0 {
                        out(&buf[..out_off])?;
                    }
                    match r {
                        BrotliResult::NeedsMoreOutput => continue,
                        BrotliResult::NeedsMoreInput => break,
                        BrotliResult::ResultSuccess => *done = true,
                        BrotliResult::ResultFailure => {
                            return Err(corrupt("br", "invalid brotli data"))
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn finish(&mut self, out: &mut Sink<'_>) -> Result<(), Stop> {
        match self {
            Layer::Gzip(d) => finish_writer(d, "gzip", out),
            Layer::Zlib(d) => finish_writer(d, "deflate", out),
            Layer::RawDeflate(d) => finish_writer(d, "deflate", out),
            Layer::DeflateSniff { n, .. } => {
                if *n == 0 {
                    Ok(())
                } else {
                    Err(corrupt("deflate", "truncated"))
                }
            }
            Layer::Brotli { done, .. } => {
                if *done {
                    Ok(())
                } else {
                    Err(corrupt("br", "truncated"))
                }
            }
        }
    }
}

/// Trait over the flate2 write-side decoders (they share no trait for `get_mut`).
trait Flate: Write {
    fn out_buf(&mut self) -> &mut Vec<u8>;
    fn done(&mut self) -> std::io::Result<()>;
}

macro_rules! flate {
    ($t:ty) => {
        impl Flate for $t {
            fn out_buf(&mut self) -> &mut Vec<u8> {
                self.get_mut()
            }
            fn done(&mut self) -> std::io::Result<()> {
                self.try_finish()
            }
        }
    };
}
flate!(MultiGzDecoder<Vec<u8>>);
flate!(ZlibDecoder<Vec<u8>>);
flate!(DeflateDecoder<Vec<u8>>);

/// Feed `input` through a flate2 writer; each `write` emits at most one internal buffer
/// (32 KiB), which is handed on and cleared before the next, so memory stays bounded.
fn write_all<D: Flate>(
    d: &mut D,
    mut input: &[u8],
    what: &str,
    out: &mut Sink<'_>,
) -> Result<(), Stop> {
    while !input.is_empty() {
        let n = d.write(input).map_err(|e| corrupt(what, e))?;
        drain(d, out)?;
        if n == 0 {
            // Trailing bytes after the end of the stream: nothing more to decode.
            break;
        }
        input = &input[n..];
    }
    Ok(())
}

fn drain<D: Flate>(d: &mut D, out: &mut Sink<'_>) -> Result<(), Stop> {
    let buf = d.out_buf();
    if !buf.is_empty() {
        let r = out(buf);
        buf.clear();
        r?;
    }
    Ok(())
}

fn finish_writer<D: Flate>(d: &mut D, what: &str, out: &mut Sink<'_>) -> Result<(), Stop> {
    let r = d.done().map_err(|e| corrupt(what, e));
    drain(d, out)?;
    r
}

/// A chain of content decoders, applied in reverse order of the header's list.
pub struct Decoding {
    /// `layers[0]` sees the raw body.
    layers: Vec<Layer>,
    encoded: u64,
    decoded: u64,
    max_ratio: u64,
}

impl std::fmt::Debug for Decoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoding")
            .field("layers", &self.layers.len())
            .field("encoded", &self.encoded)
            .field("decoded", &self.decoded)
            .finish()
    }
}

impl Decoding {
    /// Decoders for a `Content-Encoding` value; `None` when it is absent or identity.
    pub fn from_header(value: &str, max_ratio: u64) -> Result<Option<Decoding>, Uninspectable> {
        let mut layers = Vec::new();
        for name in value.split(',').rev() {
            let name = name.trim().to_ascii_lowercase();
            let layer = match name.as_str() {
                "" | "identity" => continue,
                "gzip" | "x-gzip" => {
                    Layer::Gzip(MultiGzDecoder::new(Vec::with_capacity(32 * 1024)))
                }
                "deflate" => Layer::DeflateSniff { seen: [0; 2], n: 0 },
                "br" => Layer::Brotli {
                    state: Box::new(BrotliState::new(
                        StandardAlloc::default(),
                        StandardAlloc::default(),
                        StandardAlloc::default(),
                    )),
                    out: vec![0u8; OUT_CHUNK].into_boxed_slice(),
                    done: false,
                },
                _ => {
                    // Only the token, bounded, goes into the message: it is a header value.
                    let shown: String = name.chars().take(32).collect();
                    return Err(Uninspectable::UnsupportedEncoding(shown));
                }
            };
            layers.push(layer);
        }
        if layers.is_empty() {
            return Ok(None);
        }
        Ok(Some(Decoding {
            layers,
            encoded: 0,
            decoded: 0,
            max_ratio,
        }))
    }

    /// Decode the next raw chunk, handing decoded bytes to `sink`.
    pub fn feed(&mut self, input: &[u8], sink: &mut Sink<'_>) -> Result<(), Stop> {
        self.encoded += input.len() as u64;
        let (encoded, max_ratio) = (self.encoded, self.max_ratio);
        let decoded = &mut self.decoded;
        let mut guarded = |b: &[u8]| {
            *decoded += b.len() as u64;
            if *decoded > BOMB_FLOOR && *decoded > encoded.saturating_mul(max_ratio) {
                return Err(Stop::Uninspectable(Uninspectable::DecompressionBomb));
            }
            sink(b)
        };
        chain_feed(&mut self.layers, input, &mut guarded)
    }

    /// End of body: flush every layer.
    pub fn finish(&mut self, sink: &mut Sink<'_>) -> Result<(), Stop> {
        let (encoded, max_ratio) = (self.encoded, self.max_ratio);
        let decoded = &mut self.decoded;
        let mut guarded = |b: &[u8]| {
            *decoded += b.len() as u64;
            if *decoded > BOMB_FLOOR && *decoded > encoded.saturating_mul(max_ratio) {
                return Err(Stop::Uninspectable(Uninspectable::DecompressionBomb));
            }
            sink(b)
        };
        chain_finish(&mut self.layers, &mut guarded)
    }
}

fn chain_feed(layers: &mut [Layer], input: &[u8], sink: &mut Sink<'_>) -> Result<(), Stop> {
    match layers.split_first_mut() {
        None => sink(input),
        Some((first, rest)) => first.feed(input, &mut |o: &[u8]| chain_feed(rest, o, sink)),
    }
}

fn chain_finish(layers: &mut [Layer], sink: &mut Sink<'_>) -> Result<(), Stop> {
    match layers.split_first_mut() {
        None => Ok(()),
        Some((first, rest)) => {
            first.finish(&mut |o: &[u8]| chain_feed(rest, o, sink))?;
            chain_finish(rest, sink)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{GzEncoder, ZlibEncoder};
    use flate2::Compression;

    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    pub(crate) fn brotli_compress(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 9, 22);
            w.write_all(data).unwrap();
        }
        out
    }

    fn decode(header: &str, body: &[u8], chunk: usize) -> Result<Vec<u8>, Uninspectable> {
        let mut d = Decoding::from_header(header, 100)?.expect("decoder");
        let mut out = Vec::new();
        let mut sink = |b: &[u8]| {
            out.extend_from_slice(b);
            Ok(())
        };
        let res = (|| {
            for c in body.chunks(chunk) {
                d.feed(c, &mut sink)?;
            }
            d.finish(&mut sink)
        })();
        match res {
            Ok(()) => Ok(out),
            Err(Stop::Uninspectable(u)) => Err(u),
            Err(Stop::Consumer) => unreachable!(),
        }
    }

    #[test]
    fn gzip_zlib_raw_and_chain() {
        let text = b"hello 13812345678 world".repeat(100);
        let gz = gzip(&text);
        for chunk in [1, 7, 4096] {
            assert_eq!(decode("gzip", &gz, chunk).unwrap(), text);
        }
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(&text).unwrap();
        let z = z.finish().unwrap();
        assert_eq!(decode("deflate", &z, 3).unwrap(), text);
        let mut r = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
        r.write_all(&text).unwrap();
        let r = r.finish().unwrap();
        assert_eq!(decode("Deflate", &r, 5).unwrap(), text);
        // gzip then deflate(zlib): decode zlib first.
        let mut z2 = ZlibEncoder::new(Vec::new(), Compression::default());
        z2.write_all(&gz).unwrap();
        let z2 = z2.finish().unwrap();
        assert_eq!(decode("gzip, deflate", &z2, 11).unwrap(), text);
    }

    #[test]
    fn brotli() {
        let text = "姓名 张三 13812345678 ".repeat(500).into_bytes();
        let br = brotli_compress(&text);
        for chunk in [1, 9, 100_000] {
            assert_eq!(decode("br", &br, chunk).unwrap(), text);
        }
        let cut = &br[..br.len() / 2];
        assert!(matches!(
            decode("br", cut, 2),
            Err(Uninspectable::CorruptEncoding(_))
        ));
    }

    #[test]
    fn bombs_and_garbage() {
        let zeros = vec![0u8; 8 * 1024 * 1024];
        let gz = gzip(&zeros);
        assert!(gz.len() * 100 < zeros.len());
        assert_eq!(
            decode("gzip", &gz, 4096),
            Err(Uninspectable::DecompressionBomb)
        );
        assert!(matches!(
            decode("gzip", b"not gzip at all", 4),
            Err(Uninspectable::CorruptEncoding(_))
        ));
        assert!(matches!(
            Decoding::from_header("compress", 100),
            Err(Uninspectable::UnsupportedEncoding(_))
        ));
        assert!(Decoding::from_header("identity", 100).unwrap().is_none());
    }
}
