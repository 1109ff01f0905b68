package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/authstore"
)

func tokenCommand() *cli.Command {
	return &cli.Command{
		Name:  "token",
		Usage: "create, list and revoke API tokens (reads DATABASE_URL)",
		Description: "Tokens are for the HTTP API: each has a role (viewer reads; operator also uploads,\n" +
			"edits, reprocesses; admin also manages settings and sees the process's internals) and is\n" +
			"scoped to clients or to every client (*). These commands work on the database directly\n" +
			"(DATABASE_URL, default " + store.DefaultDSN + "), so whoever may reach it may\n" +
			"manage tokens; the audit log names them as cli:<user>.",
		Subcommands: []*cli.Command{{
			Name:      "create",
			Usage:     "make a token; prints it on the last line (the only time it is shown)",
			ArgsUsage: " ",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "client", Required: true, Usage: "clients the token may see, comma-separated, or * for every client"},
				&cli.StringFlag{Name: "role", Required: true, Usage: "viewer, operator or admin"},
				&cli.StringFlag{Name: "expires", Usage: "when it stops working: a duration (90d, 12h), a date (2027-01-31, start of the day UTC) or an RFC 3339 time; default never"},
				&cli.StringFlag{Name: "name", Usage: "who the token's actions are recorded as (default token-<id>)"},
			},
			Action: func(c *cli.Context) error {
				role, err := auth.ParseRole(c.String("role"))
				if err != nil {
					return cli.Exit("vivace token create: --"+err.Error(), 2)
				}
				expires, err := auth.ParseExpiry(c.String("expires"), time.Now())
				if err != nil {
					return cli.Exit("vivace token create: --"+err.Error(), 2)
				}
				return withTokens(c, "create", func(ctx context.Context, tokens *auth.Service) error {
					t, secret, err := tokens.Create(ctx, cliActor(), auth.NewToken{Name: c.String("name"), Role: role,
						Clients: splitList(c.String("client")), ExpiresAt: expires})
					if err != nil {
						return err
					}
					exp := "never expires"
					if t.ExpiresAt != nil {
						exp = "expires " + t.ExpiresAt.Format(time.RFC3339)
					}
					fmt.Fprintf(os.Stderr, "token %s (%s): %s for %s, %s; keep it secret, it is not shown again\n",
						t.ID, t.Name, t.Role, strings.Join(t.Clients, ","), exp)
					fmt.Println(secret)
					return nil
				})
			},
		}, {
			Name:      "list",
			Usage:     "print every token, one JSON object per line (never a secret)",
			ArgsUsage: " ",
			Action: func(c *cli.Context) error {
				return withTokens(c, "list", func(ctx context.Context, tokens *auth.Service) error {
					list, err := tokens.List(ctx)
					if err != nil {
						return err
					}
					enc := json.NewEncoder(os.Stdout)
					now := time.Now()
					for i := range list {
						if err := enc.Encode(newTokenLine(&list[i], now)); err != nil {
							return err
						}
					}
					return nil
				})
			},
		}, {
			Name:      "revoke",
			Usage:     "end a token at once; prints it as token list does",
			ArgsUsage: "ID",
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return cli.Exit("vivace token revoke: name one token ID (token list shows them)", 2)
				}
				return withTokens(c, "revoke", func(ctx context.Context, tokens *auth.Service) error {
					t, err := tokens.Revoke(ctx, cliActor(), c.Args().First())
					if err != nil {
						return err
					}
					return json.NewEncoder(os.Stdout).Encode(newTokenLine(&t, time.Now()))
				})
			},
		}},
	}
}

// withTokens runs fn with the token service over DATABASE_URL.
func withTokens(c *cli.Context, what string, fn func(context.Context, *auth.Service) error) error {
	dsn := databaseURL()
	if dsn == "" {
		dsn = store.DefaultDSN
	}
	st, err := store.Open(c.Context, dsn)
	if err != nil {
		return cli.Exit(fmt.Sprintf("vivace token %s: %v", what, err), 1)
	}
	defer st.Close()
	as := authstore.New(st)
	if err := fn(c.Context, auth.NewService(as, as)); err != nil {
		msg := err.Error()
		if store.ServerError(err) && strings.Contains(msg, "api_tokens") {
			msg += " (has the schema been applied? vivace migrate)"
		}
		return cli.Exit(fmt.Sprintf("vivace token %s: %s", what, msg), 1)
	}
	return nil
}

// cliActor is who a token command is recorded as: the operating system
// user who ran it against the database.
func cliActor() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if name == "" {
		name = "unknown"
	}
	return "cli:" + name
}

// tokenLine is a token as token list prints it.
type tokenLine struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	Clients    []string   `json:"clients"`
	Status     string     `json:"status"`
	CreatedAt  time.Time  `json:"created_at"`
	CreatedBy  string     `json:"created_by"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	RevokedBy  string     `json:"revoked_by,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

func newTokenLine(t *auth.Token, now time.Time) tokenLine {
	utc := func(p *time.Time) *time.Time {
		if p == nil {
			return nil
		}
		u := p.UTC()
		return &u
	}
	return tokenLine{ID: t.ID, Name: t.Name, Role: t.Role.String(), Clients: t.Clients, Status: string(t.Status(now)),
		CreatedAt: t.CreatedAt.UTC(), CreatedBy: t.CreatedBy, ExpiresAt: utc(t.ExpiresAt), RevokedAt: utc(t.RevokedAt),
		RevokedBy: t.RevokedBy, LastUsedAt: utc(t.LastUsedAt)}
}
