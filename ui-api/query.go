package uiapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	graphql "github.com/graph-gophers/graphql-go"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/store"
)

// resolver is the schema's root: Query's and Mutation's fields.
type resolver struct{ a *API }

// Me is the token the request acts as.
type Me struct {
	Name, TokenID, Role string
	Clients             []string
	AllClients, CanEdit bool
}

func (r *resolver) Me(ctx context.Context) *Me {
	p := principal(ctx)
	cs := p.Clients()
	if cs == nil {
		cs = []string{}
	}
	return &Me{Name: p.Name, TokenID: p.TokenID, Role: p.Role.String(), Clients: cs, AllClients: p.AllClients(),
		CanEdit: p.HasRole(auth.Operator) == nil}
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return strings.TrimSpace(*p)
}

func idStr(p *graphql.ID) string {
	if p == nil {
		return ""
	}
	return strings.TrimSpace(string(*p))
}

func timeRange(from, to *graphql.Time) (*time.Time, *time.Time, error) {
	var f, t *time.Time
	if from != nil {
		v := from.UTC()
		f = &v
	}
	if to != nil {
		v := to.UTC()
		t = &v
	}
	if f != nil && t != nil && !f.Before(*t) {
		return nil, nil, badInput("from (%s) must be before to (%s): the range is from ≤ t < to", f.Format(time.RFC3339), t.Format(time.RFC3339))
	}
	return f, t, nil
}

func fileIDArg(id string) error {
	if id != "" && !ids.Valid(id) {
		return badInput("fileId: %q is not a file id (a UUID such as 0193a2b4-c5d6-7e8f-9012-3456789abcde)", id)
	}
	return nil
}

func names[S ~string](list []S) string {
	out := make([]string, len(list))
	for i, v := range list {
		out[i] = string(v)
	}
	return strings.Join(out, ", ")
}

// PageInfo says where a page ends.
type PageInfo struct {
	EndCursor   *string
	HasNextPage bool
}

type pageArgs struct {
	First *int32
	After *string
}

// FileFilter is the schema's FileFilter input.
type FileFilter struct{ Client, Status *string }

// File is a file as the schema shows it.
type File struct {
	f                                           files.File
	Client, Name, Source, Status, Reason        string
	Records                                     *int32
	MURs, Exceptions, Filtered, Outcomes, Split int32
	SizeBytes                                   float64
	ReceivedAt                                  graphql.Time
	StartedAt, FinishedAt                       *graphql.Time
}

func (f *File) ID() graphql.ID { return graphql.ID(f.f.FileID) }

func timePtr(t *time.Time) *graphql.Time {
	if t == nil {
		return nil
	}
	return &graphql.Time{Time: t.UTC()}
}

func newFile(f files.File) *File {
	out := &File{f: f, Client: f.Client, Name: f.Name, Source: f.Source, Status: string(f.Status), Reason: f.Reason,
		MURs: int32(f.MURs), Exceptions: int32(f.Exceptions), Filtered: int32(f.Filtered), Split: int32(f.Split),
		Outcomes: int32(f.MURs + f.Exceptions + f.Filtered), SizeBytes: float64(f.SizeBytes),
		ReceivedAt: graphql.Time{Time: f.ReceivedAt.UTC()}, StartedAt: timePtr(f.StartedAt), FinishedAt: timePtr(f.FinishedAt)}
	if f.Records != nil {
		n := int32(*f.Records)
		out.Records = &n
	}
	return out
}

func (r *resolver) Files(ctx context.Context, args struct {
	Filter *FileFilter
	First  *int32
}) ([]*File, error) {
	n, err := first(ctx, args.First, 50)
	if err != nil {
		return nil, err
	}
	var client string
	f := files.Filter{Limit: n}
	if args.Filter != nil {
		client, f.Status = str(args.Filter.Client), files.Status(str(args.Filter.Status))
	}
	if f.Status != "" && !f.Status.Valid() {
		return nil, badInput("status: %q is not a file status (%s)", f.Status, names(files.Statuses))
	}
	if f.Clients, err = principal(ctx).Filter(client); err != nil {
		return nil, err
	}
	list, err := r.a.Files.ListFiles(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]*File, len(list))
	for i := range list {
		out[i] = newFile(list[i])
	}
	return out, nil
}

func (r *resolver) File(ctx context.Context, args struct{ ID graphql.ID }) (*File, error) {
	if !ids.Valid(string(args.ID)) {
		return nil, nil
	}
	f, err := r.a.Files.GetFile(ctx, string(args.ID))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	// Another client's file is refused without saying whose, as GET
	// /api/v1/files/{id} refuses it.
	if err := principal(ctx).SeeOf(fmt.Sprintf("file %q", f.FileID), f.Client); err != nil {
		return nil, err
	}
	return newFile(f), nil
}

// MURFilter is the schema's MURFilter input.
type MURFilter struct {
	Client     *string
	FileID     *graphql.ID
	AccountID  *string
	SyncStatus *string
	From, To   *graphql.Time
}

// MURConnection is a page of MURs; its totals are read only when asked
// for.
type MURConnection struct {
	Edges    []*MUREdge
	PageInfo *PageInfo

	a      *API
	filter murs.Filter
	once   sync.Once
	totals []murs.CurrencyTotal
	err    error
}

// MUREdge is one MUR of a page.
type MUREdge struct {
	Cursor string
	Node   *MUR
}

// MUR is a MUR as the schema shows it.
type MUR struct {
	m                                                                      murs.MUR
	Client, RecordID, AccountID, UsageType, Quantity, Currency, SyncStatus string
	GrossAmount, DiscountAmount, NetAmount                                 string
	Line, Part                                                             int32
	UsageTime, RatedAt                                                     graphql.Time
	SyncError                                                              *string
}

func (m *MUR) ID() graphql.ID     { return graphql.ID(m.m.MURID) }
func (m *MUR) FileID() graphql.ID { return graphql.ID(m.m.FileID) }

// CurrencyTotal sums a list's MURs in one currency.
type CurrencyTotal struct {
	Currency, Quantity, GrossAmount, DiscountAmount, NetAmount string
	MURs                                                       int32
}

func (c *MURConnection) load(ctx context.Context) ([]murs.CurrencyTotal, error) {
	c.once.Do(func() { c.totals, c.err = c.a.MURs.MURTotals(ctx, c.filter) })
	return c.totals, c.err
}

func (c *MURConnection) TotalCount(ctx context.Context) (int32, error) {
	t, err := c.load(ctx)
	var n int64
	for _, x := range t {
		n += x.MURs
	}
	return int32(n), err
}

func (c *MURConnection) Totals(ctx context.Context) ([]*CurrencyTotal, error) {
	t, err := c.load(ctx)
	out := make([]*CurrencyTotal, len(t))
	for i, x := range t {
		out[i] = &CurrencyTotal{Currency: x.Currency, Quantity: x.Quantity, GrossAmount: x.GrossAmount,
			DiscountAmount: x.DiscountAmount, NetAmount: x.NetAmount, MURs: int32(x.MURs)}
	}
	return out, err
}

func (r *resolver) MURs(ctx context.Context, args struct {
	Filter *MURFilter
	pageArgs
}) (*MURConnection, error) {
	n, err := first(ctx, args.First, 50)
	if err != nil {
		return nil, err
	}
	var f murs.Filter
	var client string
	if in := args.Filter; in != nil {
		client = str(in.Client)
		f = murs.Filter{FileID: idStr(in.FileID), AccountID: str(in.AccountID), SyncStatus: murs.SyncStatus(str(in.SyncStatus))}
		if f.From, f.To, err = timeRange(in.From, in.To); err != nil {
			return nil, err
		}
	}
	if f.SyncStatus != "" && !f.SyncStatus.Valid() {
		return nil, badInput("syncStatus: %q is not a sync status (%s)", f.SyncStatus, names(murs.SyncStatuses))
	}
	if err := fileIDArg(f.FileID); err != nil {
		return nil, err
	}
	if f.Clients, err = principal(ctx).Filter(client); err != nil {
		return nil, err
	}
	after := str(args.After)
	if after != "" && !ids.Valid(after) {
		return nil, badInput("after: %q is not a cursor of this list", after)
	}
	list, err := r.a.MURs.ListMURs(ctx, f, murs.Page{After: after, Limit: n + 1})
	if err != nil {
		return nil, err
	}
	c := &MURConnection{a: r.a, filter: f, Edges: []*MUREdge{}, PageInfo: &PageInfo{HasNextPage: len(list) > n}}
	for _, m := range list[:min(n, len(list))] {
		c.Edges = append(c.Edges, &MUREdge{Cursor: m.MURID, Node: &MUR{m: m, Client: m.Client, RecordID: m.RecordID,
			AccountID: m.AccountID, UsageType: m.UsageType, Quantity: m.Quantity, Currency: m.Currency,
			SyncStatus: string(m.SyncStatus), GrossAmount: m.GrossAmount, DiscountAmount: m.DiscountAmount,
			NetAmount: m.NetAmount, Line: int32(m.Line), Part: int32(m.Part),
			UsageTime: graphql.Time{Time: m.UsageTime}, RatedAt: graphql.Time{Time: m.RatedAt}, SyncError: m.SyncError}})
	}
	if len(c.Edges) > 0 {
		end := c.Edges[len(c.Edges)-1].Cursor
		c.PageInfo.EndCursor = &end
	}
	return c, nil
}
