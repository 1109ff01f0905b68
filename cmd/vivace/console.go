package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/api"
	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/kafkax"
	"vivace.dev/vivace/internal/settings"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/auditstore"
	"vivace.dev/vivace/internal/store/catalogstore"
	"vivace.dev/vivace/internal/store/filestore"
	"vivace.dev/vivace/internal/store/settingstore"
	"vivace.dev/vivace/internal/store/usagestore"
	uiapi "vivace.dev/vivace/ui-api"
)

// consumerGroups are the pipelines' consumer groups, whose lag the
// console shows.
var consumerGroups = []string{"vivace-mediate", "vivace-rate", "vivace-exceptions", "vivace-catalog", "vivace-sync"}

// mountConsole adds GraphQL (/graphql) and the console (/) to the API's
// route table, on the same stores as the REST routes. It returns what to
// close at the end.
func mountConsole(srv *api.Server, st *store.Store, work uiapi.ExceptionWork, sync *devSync, brokers string, audit auth.Auditor,
	gatherer prometheus.Gatherer, log *slog.Logger) (func(), error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ClientID("vivace-console"))
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(cl)
	us, cs := usagestore.New(st), catalogstore.New(st)
	g := &uiapi.API{Work: work, Files: filestore.New(st), MURs: us, Feed: cs,
		Repair: feed.NewApplier(cs, catalog.ValidateData), Sync: sync.st, SyncRunner: sync.ops, Backlogs: sync.st,
		Settings: &settings.Service{Store: settingstore.New(st)}, AuditLog: auditstore.New(st), Audit: audit,
		Gatherer: gatherer, Logger: log,
		Lag: func(ctx context.Context) ([]uiapi.GroupLag, error) {
			lags, err := kafkax.Lag(ctx, adm, consumerGroups...)
			out := make([]uiapi.GroupLag, len(lags))
			for i, l := range lags {
				out[i] = uiapi.GroupLag{Group: l.Group, Topic: l.Topic, Lag: l.Lag}
			}
			return out, err
		}}
	if err := g.Init(); err != nil {
		cl.Close()
		return nil, err
	}
	srv.MountConsole(g.Handler(), uiapi.Console())
	return cl.Close, nil
}
