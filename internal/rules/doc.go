// Package rules holds the declarative mediation rules that the mediate
// stage applies to raw usage records, free of Benthos: unit conversion,
// lookup tables (the CSV reader, the answer cache, the enrichment of a
// record from its entry) and the correlation of partial records (when a
// group is complete or timed out, what its emission holds, the Correlator
// that adds records to groups and sweeps them).
//
// What the rules keep in PostgreSQL (correlation groups, lookup tables)
// they reach through the narrow interfaces declared here (CorrelationStore,
// LookupReader); internal/store/rulestore implements them. The Benthos
// processors in plugins/benthos only turn messages into records and back.
//
// The client mediation plugins are another matter: their contract is the
// plugin SDK, vivace.dev/vivace/plugins/mediation.
package rules
