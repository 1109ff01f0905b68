// Package layers holds no code: its test keeps the packages under
// internal/ in their layers (docs/architecture.md, "Packages and what they
// may import").
//
// A package is an adapter when the test's list of adapters names it;
// every other package is domain. Domain packages know nothing of I/O
// frameworks: they import neither Benthos, net/http, pgx, franz-go, the
// S3 client nor any adapter package (internal/store and the stores under
// it included), and no module outside a short list (decimals, YAML).
// Their tests may: the rule is checked on the non-test files only.
package layers
