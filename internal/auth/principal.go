package auth

import (
	"context"
	"slices"
)

// Principal is who a request acts as: a checked, unexpired, unrevoked
// token. Handlers ask it; they never look at the token itself.
type Principal struct {
	TokenID string
	// Name is who acted, for the audit log and the records an action
	// leaves (a feed event reprocessed by "operator:<name>").
	Name    string
	Role    Role
	all     bool
	clients []string
}

// NewPrincipal is the principal of a token with role and clients (see
// ValidateClients).
func NewPrincipal(tokenID, name string, role Role, clients []string) Principal {
	p := Principal{TokenID: tokenID, Name: name, Role: role}
	if len(clients) == 1 && clients[0] == AllClients {
		p.all = true
	} else {
		p.clients = slices.Clone(clients)
	}
	return p
}

// AllClients reports whether the token covers every client.
func (p Principal) AllClients() bool { return p.all }

// Clients is the token's client list (nil for a token of every client).
func (p Principal) Clients() []string { return slices.Clone(p.clients) }

// HasRole refuses a principal below role.
func (p Principal) HasRole(role Role) error {
	if !p.Role.AtLeast(role) {
		return forbidden("this needs the %s role; token %s is %s", role, p.TokenID, p.Role)
	}
	return nil
}

// MaySee reports whether the token covers client.
func (p Principal) MaySee(client string) bool {
	return p.Role.Valid() && (p.all || slices.Contains(p.clients, client))
}

// See refuses a client the token does not cover.
func (p Principal) See(client string) error {
	if !p.MaySee(client) {
		return forbidden("token %s does not cover client %q", p.TokenID, client)
	}
	return nil
}

// SeeOf refuses an object (what: `file "x"`) of a client the token does
// not cover, without naming that client: the caller named the object, not
// its client, and learns nothing of whose it is.
func (p Principal) SeeOf(what, client string) error {
	if !p.MaySee(client) {
		return forbidden("token %s does not cover the client of %s", p.TokenID, what)
	}
	return nil
}

// Change refuses to change client's data without the operator role for
// it.
func (p Principal) Change(client string) error {
	if err := p.HasRole(Operator); err != nil {
		return err
	}
	return p.See(client)
}

// ChangeOf is Change for an object the caller named (see SeeOf).
func (p Principal) ChangeOf(what, client string) error {
	if err := p.HasRole(Operator); err != nil {
		return err
	}
	return p.SeeOf(what, client)
}

// Every refuses a token that does not cover every client (for what is not
// any one client's: the process's internals, tokens, system settings).
func (p Principal) Every() error {
	if !p.Role.Valid() || !p.all {
		return forbidden("this needs a token for every client (*); token %s is for %v", p.TokenID, p.clients)
	}
	return nil
}

// Filter is the client filter of a list query: requested alone when it is
// named and covered, the token's clients when none is named, and nil
// (every client) for a token of every client. A requested client outside
// the token is refused, so a list never quietly answers with nothing for
// a client the caller may not see.
func (p Principal) Filter(requested string) ([]string, error) {
	if requested != "" {
		if err := p.See(requested); err != nil {
			return nil, err
		}
		return []string{requested}, nil
	}
	switch {
	case p.all && p.Role.Valid():
		return nil, nil
	case len(p.clients) > 0 && p.Role.Valid():
		return slices.Clone(p.clients), nil
	default: // the zero Principal: nothing, and never "everything"
		return nil, forbidden("no token")
	}
}

type principalKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal the request acts as, and false when
// none was checked (which handlers must treat as a refusal).
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
