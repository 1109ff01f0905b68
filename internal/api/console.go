package api

import (
	"net/http"

	"vivace.dev/vivace/internal/auth"
)

// The console's routes (MountConsole).
const (
	// GraphQLPattern is the GraphQL API: any token may ask, each field
	// keeps to the token's clients and each mutation checks the role.
	GraphQLPattern = "POST /graphql"
	// ConsolePage is the console's page, at / only.
	ConsolePage = "GET /{$}"
	// ConsoleAssets are the page's scripts and styles.
	ConsoleAssets = "GET /console/"
)

// MountConsole adds the GraphQL API and the operations console to the
// route table: GraphQL for a viewer token or better (its resolvers keep
// to the token's clients and need an operator token to change anything),
// the console's page and assets without a token (they are embedded files
// that hold no data; the page asks for a token and sends it with every
// GraphQL request).
func (s *Server) MountConsole(graphql, console http.Handler) {
	s.Mount(Route{GraphQLPattern, auth.Viewer, PerClient, graphql})
	s.Mount(Route{ConsolePage, 0, Open, console})
	s.Mount(Route{ConsoleAssets, 0, Open, console})
}
