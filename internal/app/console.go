package app

import (
	"context"

	"github.com/twmb/franz-go/pkg/kadm"

	"vivace.dev/vivace/internal/api"
	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/kafkax"
	"vivace.dev/vivace/internal/settings"
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
// route table, on the same stores and services as the REST routes: the
// exceptions service work, the MUR sync's operations and the probe's
// Kafka client for the consumer lag.
func (a *App) mountConsole(srv *api.Server, work uiapi.ExceptionWork, audit auth.Auditor) error {
	us, cs := usagestore.New(a.Store), catalogstore.New(a.Store)
	adm := kadm.NewClient(a.kafka)
	g := &uiapi.API{Work: work, Files: filestore.New(a.Store), MURs: us, Feed: cs,
		Repair: feed.NewApplier(cs, catalog.ValidateData), Sync: a.sync.st, SyncRunner: a.sync.ops, Backlogs: a.sync.st,
		Settings: &settings.Service{Store: settingstore.New(a.Store)}, AuditLog: auditstore.New(a.Store), Audit: audit,
		Gatherer: srv.Gatherer, Logger: a.log.With("component", "graphql"),
		Lag: func(ctx context.Context) ([]uiapi.GroupLag, error) {
			lags, err := kafkax.Lag(ctx, adm, consumerGroups...)
			out := make([]uiapi.GroupLag, len(lags))
			for i, l := range lags {
				out[i] = uiapi.GroupLag{Group: l.Group, Topic: l.Topic, Lag: l.Lag}
			}
			return out, err
		}}
	if err := g.Init(); err != nil {
		return err
	}
	srv.MountConsole(g.Handler(), uiapi.Console())
	return nil
}
