package pgtest

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// clockTicks is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// every Linux this runs on).
const clockTicks = 100

// BackendCPU is a reading of the CPU time PostgreSQL's server processes
// spent for one database, for benchmarks that report how a stage's CPU
// splits between Go and the database. It only works when the server runs
// on this machine and its processes' /proc entries are readable; Ok says
// whether it did.
type BackendCPU struct {
	pids map[int32]time.Duration
	Ok   bool
}

// ReadBackendCPU reads the CPU time of every server process connected to
// pool's database.
func ReadBackendCPU(ctx context.Context, pool *pgxpool.Pool) BackendCPU {
	out := BackendCPU{pids: map[int32]time.Duration{}, Ok: true}
	rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		return BackendCPU{}
	}
	defer rows.Close()
	for rows.Next() {
		var pid int32
		if rows.Scan(&pid) != nil {
			return BackendCPU{}
		}
		cpu, ok := procCPU(pid)
		if !ok {
			return BackendCPU{}
		}
		out.pids[pid] = cpu
	}
	if rows.Err() != nil {
		return BackendCPU{}
	}
	return out
}

// Since returns the CPU time the database's server processes spent
// between before and b (a process that connected in between counts from
// zero); ok is false when either reading failed.
func (b BackendCPU) Since(before BackendCPU) (time.Duration, bool) {
	if !b.Ok || !before.Ok {
		return 0, false
	}
	var d time.Duration
	for pid, cpu := range b.pids {
		d += cpu - before.pids[pid]
	}
	return d, true
}

// procCPU is the user and system time of process pid.
func procCPU(pid int32) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// utime and stime are the 12th and 13th fields after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+st) * time.Second / clockTicks, true
}
