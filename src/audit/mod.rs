//! Audit events: one JSON line per decision about an outbound request, field names following
//! the Elastic Common Schema where one exists. Never raw personal data: categories, counts,
//! masked samples and the number of individuals only.
