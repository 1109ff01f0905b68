package rulestore

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/rules"
)

// CorrelateParts adds records to the open groups of rule (opening a group
// for a key that has none, with a deadline window after now), then asks
// decide about every group that received a record, in one transaction.
// Groups are locked while decide looks at them, so two batches adding to
// one group queue. A record whose source position is already held by the
// rule, or already has an outcome (a MUR, an exception, a filtered
// record), is a replay and changes nothing. Groups decide closes are
// marked emitted (not deleted) and returned; the caller sends them on.
func (s *Store) CorrelateParts(ctx context.Context, rule string, parts []rules.CorrelationPart, window time.Duration,
	now time.Time, decide rules.Decider) (rules.CorrelateResult, error) {
	var res rules.CorrelateResult
	if len(parts) == 0 {
		return res, nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		res = rules.CorrelateResult{}
		known, err := knownPositions(ctx, tx, rule, parts, true)
		if err != nil {
			return err
		}
		// One copy per position: a batch may hold a record twice.
		type pos struct {
			client, file string
			line         int64
			part         int
		}
		seen := map[pos]bool{}
		fresh := make([]rules.CorrelationPart, 0, len(parts))
		for i, p := range parts {
			k := pos{p.Client, p.FileID, p.Line, p.Part}
			if known[i] || seen[k] {
				res.Replayed++
				continue
			}
			seen[k] = true
			fresh = append(fresh, p)
		}
		if len(fresh) == 0 {
			return nil
		}
		groups, err := openGroups(ctx, tx, rule, fresh, now, now.Add(window))
		if err != nil {
			return err
		}
		if err := loadParts(ctx, tx, slices.Collect(maps.Values(groups))); err != nil {
			return err
		}
		touched, err := insertParts(ctx, tx, rule, fresh, groups, now)
		if err != nil {
			return err
		}
		res.Held = len(fresh)
		res.Emitted, err = emitDecided(ctx, tx, touched, decide, now)
		return err
	})
	return res, err
}

// emitDecided asks decide about each group, marks emitted those it
// closes, and returns them.
func emitDecided(ctx context.Context, tx pgx.Tx, groups []*rules.CorrelationGroup, decide rules.Decider, now time.Time) ([]rules.CorrelationGroup, error) {
	var close []*rules.CorrelationGroup
	var outcomes []rules.Outcome
	for _, g := range groups {
		o, err := decide(g)
		if err != nil {
			return nil, err
		}
		if o != rules.OutcomeOpen {
			close, outcomes = append(close, g), append(outcomes, o)
		}
	}
	if err := markEmitted(ctx, tx, close, outcomes, now); err != nil {
		return nil, err
	}
	var out []rules.CorrelationGroup
	for _, g := range close {
		out = append(out, *g)
	}
	return out, nil
}

// SweepCorrelation closes rule's open groups whose deadline has passed
// (decide picks the outcome; a group it keeps open stays), emits again the
// groups emitted more than resendAfter ago of which some record has no
// recorded outcome yet (the stage may have died before writing them), and
// deletes emitted groups whose records all have one. At most limit groups
// of each kind are taken; groups another process holds are skipped.
func (s *Store) SweepCorrelation(ctx context.Context, rule string, now time.Time, resendAfter time.Duration,
	limit int, decide rules.Decider) (rules.SweepResult, error) {
	var res rules.SweepResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		res = rules.SweepResult{}
		due, err := lockGroups(ctx, tx, `SELECT group_id, client, rule, key, opened_at, deadline,
				coalesce(emitted_at, 'epoch'), coalesce(outcome, ''), emissions
			FROM correlation_groups
			WHERE rule = $1 AND emitted_at IS NULL AND deadline <= $2
			ORDER BY deadline LIMIT $3 FOR UPDATE SKIP LOCKED`, rule, now, limit)
		if err != nil {
			return err
		}
		if err := loadParts(ctx, tx, due); err != nil {
			return err
		}
		var held, empty []*rules.CorrelationGroup
		for _, g := range due {
			if len(g.Parts) == 0 { // every record was a replay: nothing to emit
				empty = append(empty, g)
			} else {
				held = append(held, g)
			}
		}
		if res.TimedOut, err = emitDecided(ctx, tx, held, decide, now); err != nil {
			return err
		}

		sent, err := lockGroups(ctx, tx, `SELECT group_id, client, rule, key, opened_at, deadline,
				emitted_at, outcome, emissions
			FROM correlation_groups
			WHERE rule = $1 AND emitted_at IS NOT NULL AND emitted_at <= $2
			ORDER BY emitted_at LIMIT $3 FOR UPDATE SKIP LOCKED`, rule, now.Add(-resendAfter), limit)
		if err != nil {
			return err
		}
		if err := loadParts(ctx, tx, sent); err != nil {
			return err
		}
		var all []rules.CorrelationPart
		for _, g := range sent {
			all = append(all, g.Parts...)
		}
		recorded, err := knownPositions(ctx, tx, rule, all, false)
		if err != nil {
			return err
		}
		var resend []*rules.CorrelationGroup
		i := 0
		for _, g := range sent {
			done := true
			for range g.Parts {
				done = done && recorded[i]
				i++
			}
			if done {
				empty = append(empty, g)
			} else {
				resend = append(resend, g)
			}
		}
		if err := markResent(ctx, tx, resend, now); err != nil {
			return err
		}
		for _, g := range resend {
			res.Resent = append(res.Resent, *g)
		}
		ids := make([]int64, len(empty))
		for i, g := range empty {
			ids[i] = g.GroupID
		}
		if len(ids) > 0 {
			if _, err := tx.Exec(ctx, `DELETE FROM correlation_parts WHERE group_id = ANY($1)`, ids); err != nil {
				return fmt.Errorf("delete correlation parts: %w", err)
			}
			tag, err := tx.Exec(ctx, `DELETE FROM correlation_groups WHERE group_id = ANY($1)`, ids)
			if err != nil {
				return fmt.Errorf("delete correlation groups: %w", err)
			}
			res.Cleaned = int(tag.RowsAffected())
		}
		return nil
	})
	return res, err
}

// CorrelationGroups returns rule's groups for client, open ones and
// emitted ones not yet cleaned, in the order they opened: for tests and
// operators.
func (s *Store) CorrelationGroups(ctx context.Context, rule, client string) ([]rules.CorrelationGroup, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	gs, err := lockGroups(ctx, tx, `SELECT group_id, client, rule, key, opened_at, deadline,
			coalesce(emitted_at, 'epoch'), coalesce(outcome, ''), emissions
		FROM correlation_groups WHERE rule = $1 AND client = $2 ORDER BY group_id LIMIT $3`, rule, client, 1<<20)
	if err != nil {
		return nil, err
	}
	if err := loadParts(ctx, tx, gs); err != nil {
		return nil, err
	}
	out := make([]rules.CorrelationGroup, len(gs))
	for i, g := range gs {
		out[i] = *g
	}
	return out, nil
}

// knownPositions reports, for each part, whether its source position has
// an outcome already: a MUR, an exception (other than one being
// reprocessed, which comes back on purpose) or a filtered record; with
// held, also whether the rule holds it in a group.
func knownPositions(ctx context.Context, tx pgx.Tx, rule string, parts []rules.CorrelationPart, held bool) ([]bool, error) {
	known := make([]bool, len(parts))
	if len(parts) == 0 {
		return known, nil
	}
	n := len(parts)
	clients, files := make([]string, n), make([]string, n)
	lines, ps := make([]int64, n), make([]int32, n)
	for i, p := range parts {
		clients[i], files[i], lines[i], ps[i] = p.Client, p.FileID, p.Line, int32(p.Part)
	}
	rows, err := tx.Query(ctx, `SELECT t.i FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::int[])
			WITH ORDINALITY AS t(client, file_id, line, part, i)
		WHERE ($6 AND EXISTS (SELECT 1 FROM correlation_parts c WHERE c.rule = $5 AND c.client = t.client
				AND c.file_id = t.file_id AND c.line = t.line AND c.part = t.part))
			OR EXISTS (SELECT 1 FROM murs m WHERE m.file_id = t.file_id AND m.line = t.line
				AND m.part = t.part AND m.client = t.client)
			OR EXISTS (SELECT 1 FROM exceptions x WHERE x.client = t.client AND x.file_id = t.file_id
				AND x.line = t.line AND x.part = t.part AND x.status <> 'reprocessing')
			OR EXISTS (SELECT 1 FROM filtered_records f WHERE f.client = t.client AND f.file_id = t.file_id
				AND f.line = t.line AND f.part = t.part)`,
		clients, files, lines, ps, rule, held)
	if err != nil {
		return nil, fmt.Errorf("look up correlated positions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var i int64
		if err := rows.Scan(&i); err != nil {
			return nil, err
		}
		known[i-1] = true
	}
	return known, rows.Err()
}

// openGroups finds or opens, and locks, the open group of each key the
// parts name, in key order so that two batches cannot deadlock.
func openGroups(ctx context.Context, tx pgx.Tx, rule string, parts []rules.CorrelationPart, now, deadline time.Time) (map[[2]string]*rules.CorrelationGroup, error) {
	type ck = [2]string
	keys := map[ck]bool{}
	var clients, ks []string
	for _, p := range parts {
		k := ck{p.Client, p.Key}
		if !keys[k] {
			keys[k] = true
			clients, ks = append(clients, p.Client), append(ks, p.Key)
		}
	}
	rows, err := tx.Query(ctx, `INSERT INTO correlation_groups AS g (client, rule, key, opened_at, deadline)
		SELECT client, $1, key, $2, $3 FROM unnest($4::text[], $5::text[]) AS t(client, key)
		ORDER BY client, key
		ON CONFLICT (client, rule, key) WHERE emitted_at IS NULL DO UPDATE SET key = excluded.key
		RETURNING group_id, client, rule, key, opened_at, deadline`, rule, now, deadline, clients, ks)
	if err != nil {
		return nil, fmt.Errorf("open correlation groups: %w", err)
	}
	defer rows.Close()
	groups := make(map[ck]*rules.CorrelationGroup, len(keys))
	for rows.Next() {
		g := &rules.CorrelationGroup{}
		if err := rows.Scan(&g.GroupID, &g.Client, &g.Rule, &g.Key, &g.OpenedAt, &g.Deadline); err != nil {
			return nil, err
		}
		groups[ck{g.Client, g.Key}] = g
	}
	return groups, rows.Err()
}

func lockGroups(ctx context.Context, tx pgx.Tx, query string, args ...any) ([]*rules.CorrelationGroup, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read correlation groups: %w", err)
	}
	defer rows.Close()
	var gs []*rules.CorrelationGroup
	for rows.Next() {
		g := &rules.CorrelationGroup{}
		var outcome string
		if err := rows.Scan(&g.GroupID, &g.Client, &g.Rule, &g.Key, &g.OpenedAt, &g.Deadline,
			&g.EmittedAt, &outcome, &g.Emissions); err != nil {
			return nil, err
		}
		g.Outcome = rules.Outcome(outcome)
		if g.Outcome == rules.OutcomeOpen {
			g.EmittedAt = time.Time{}
		}
		gs = append(gs, g)
	}
	return gs, rows.Err()
}

// loadParts reads the records of the groups, in arrival order.
func loadParts(ctx context.Context, tx pgx.Tx, groups []*rules.CorrelationGroup) error {
	byID := make(map[int64]*rules.CorrelationGroup, len(groups))
	ids := make([]int64, 0, len(groups))
	for _, g := range groups {
		byID[g.GroupID] = g
		ids = append(ids, g.GroupID)
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT group_id, client, file_id::text, line, part, record, meta, arrived_at
		FROM correlation_parts WHERE group_id = ANY($1) ORDER BY group_id, seq`, ids)
	if err != nil {
		return fmt.Errorf("read correlation parts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var p rules.CorrelationPart
		var rec, meta []byte
		if err := rows.Scan(&id, &p.Client, &p.FileID, &p.Line, &p.Part, &rec, &meta, &p.ArrivedAt); err != nil {
			return err
		}
		g := byID[id]
		p.Key, p.Record = g.Key, rec
		if err := json.Unmarshal(meta, &p.Meta); err != nil {
			return fmt.Errorf("correlation part metadata: %w", err)
		}
		g.Parts = append(g.Parts, p)
	}
	return rows.Err()
}

// insertParts appends the parts to their groups, in the order given, and
// returns the groups that received one, in the order of their first new
// record.
func insertParts(ctx context.Context, tx pgx.Tx, rule string, parts []rules.CorrelationPart,
	groups map[[2]string]*rules.CorrelationGroup, now time.Time) ([]*rules.CorrelationGroup, error) {
	rows := make([][]any, len(parts))
	var touched []*rules.CorrelationGroup
	seen := map[int64]bool{}
	for i, p := range parts {
		g := groups[[2]string{p.Client, p.Key}]
		if g == nil {
			return nil, fmt.Errorf("correlation group for key %q not opened", p.Key)
		}
		if p.Meta == nil {
			p.Meta = map[string]string{}
		}
		meta, err := json.Marshal(p.Meta)
		if err != nil {
			return nil, err
		}
		p.ArrivedAt = now
		rows[i] = []any{rule, p.Client, p.FileID, p.Line, int32(p.Part), g.GroupID, int32(len(g.Parts)),
			[]byte(p.Record), meta, now}
		g.Parts = append(g.Parts, p)
		if !seen[g.GroupID] {
			seen[g.GroupID] = true
			touched = append(touched, g)
		}
	}
	// COPY: the records are new (replays were set aside first); a position
	// a concurrent batch took meanwhile voids the transaction, and the
	// retry sees the record as a replay.
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"correlation_parts"},
		[]string{"rule", "client", "file_id", "line", "part", "group_id", "seq", "record", "meta", "arrived_at"},
		pgx.CopyFromRows(rows))
	if err != nil {
		return nil, fmt.Errorf("hold correlated records: %w", err)
	}
	return touched, nil
}

func markEmitted(ctx context.Context, tx pgx.Tx, gs []*rules.CorrelationGroup, outcomes []rules.Outcome, now time.Time) error {
	if len(gs) == 0 {
		return nil
	}
	ids := make([]int64, len(gs))
	texts := make([]string, len(gs))
	for i, g := range gs {
		ids[i], texts[i] = g.GroupID, string(outcomes[i])
		g.EmittedAt, g.Outcome = now, outcomes[i]
		g.Emissions++
	}
	_, err := tx.Exec(ctx, `UPDATE correlation_groups g SET emitted_at = $1, outcome = t.outcome,
			emissions = g.emissions + 1
		FROM unnest($2::bigint[], $3::text[]) AS t(id, outcome) WHERE g.group_id = t.id`, now, ids, texts)
	if err != nil {
		return fmt.Errorf("mark correlation groups emitted: %w", err)
	}
	return nil
}

func markResent(ctx context.Context, tx pgx.Tx, gs []*rules.CorrelationGroup, now time.Time) error {
	outcomes := make([]rules.Outcome, len(gs))
	for i, g := range gs {
		outcomes[i] = g.Outcome
	}
	return markEmitted(ctx, tx, gs, outcomes, now)
}
