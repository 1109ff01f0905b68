package usagestore

import (
	"context"

	"vivace.dev/vivace/internal/murs"
)

// ExportMURs calls fn for each MUR matching the filter in source order
// (file, line, part), streaming rows rather than loading them all.
func (s *Store) ExportMURs(ctx context.Context, f murs.Filter, fn func(murs.MUR) error) error {
	rows, err := s.db.Pool().Query(ctx, `SELECT `+murColumns+` FROM murs WHERE `+murWhere+`
		ORDER BY file_id, line, part`, murArgs(f)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		m, err := scanMUR(rows)
		if err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return rows.Err()
}
