// Package mediation is the contract between Vivace's mediate stage and a
// client's mediation plugin, laid out as go-plugin's examples/grpc lays
// out its shared package:
//
//   - interface.go: the Go interface a plugin implements (Mediator) and
//     the one the host calls (Caller), with their records and results;
//   - handshake.go: the go-plugin handshake, the protocol versions and
//     the plugin maps both sides share;
//   - serve.go: Serve, which a plugin's main function calls;
//   - grpc_v1.go, grpc_v2.go: one file per protocol version, its gRPC
//     adapters for both sides and its wire code (mediationv1 and
//     mediationv2/mediation.proto);
//   - batch.go: the host's packed batch of records (Batch).
//
// A plugin is a program of its own, started by the host with
// github.com/hashicorp/go-plugin over gRPC with mutual TLS. The host sends
// whole batches of raw records; the plugin answers, per record and in
// order, with the records in normal form, an error, or a reason to filter
// the record out. docs/plugins.md describes the contract for plugin authors.
package mediation
