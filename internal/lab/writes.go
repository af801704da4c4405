package lab

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// WriteTable is where the write prober writes: every row says which server
// (port) and timeline acknowledged it. Create it with CreateWriteTable
// before starting a prober.
const WriteTable = "pgq_writes"

// CreateWriteTable creates WriteTable on primary and waits until every other
// node has replayed it: the lab commits asynchronously, and a primary killed
// right after would otherwise take the table with it.
func (c *Cluster) CreateWriteTable(ctx context.Context, primary *Node) error {
	if err := primary.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+WriteTable+` (seq bigint PRIMARY KEY, port int NOT NULL, timeline int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		if n == primary {
			continue
		}
		err := WaitFor(ctx, 30*time.Second, n.Name+" to replay "+WriteTable, func(ctx context.Context) error {
			k, err := n.QueryInt(ctx, `SELECT count(*) FROM pg_class WHERE relname = $1`, WriteTable)
			if err == nil && k != 1 {
				err = fmt.Errorf("%s has no %s yet", n.Name, WriteTable)
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Write is one write the prober sent, and what acknowledged it.
type Write struct {
	Seq        int64
	Sent, Done time.Time
	Port       int // the PostgreSQL port of the server that acknowledged it; 0 when it failed
	Timeline   int
	Err        string
}

// WriteProber writes through a listener (HAProxy's read-write one) on a new
// connection each time, as an application reconnecting after errors would,
// and records which server acknowledged each write.
type WriteProber struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	writes []Write
}

// StartWriteProber writes through 127.0.0.1:port every interval until Stop.
// Each attempt is bounded by a second.
func StartWriteProber(port int, interval time.Duration) *WriteProber {
	ctx, cancel := context.WithCancel(context.Background())
	p := &WriteProber{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for seq := int64(1); ; seq++ {
			w := writeOnce(ctx, port, seq)
			if ctx.Err() != nil {
				return
			}
			p.mu.Lock()
			p.writes = append(p.writes, w)
			p.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return p
}

const writeSQL = `INSERT INTO ` + WriteTable + ` (seq, port, timeline)
VALUES ($1, current_setting('port')::int, ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int)
RETURNING port, timeline`

// WriteOnce is one write of the prober's, through 127.0.0.1:port, bounded
// by a second: for harnesses that run several writers at once, each with
// its own sequence numbers (the table's key).
func WriteOnce(ctx context.Context, port int, seq int64) Write { return writeOnce(ctx, port, seq) }

func writeOnce(ctx context.Context, port int, seq int64) Write {
	w := Write{Seq: seq, Sent: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=repmgr dbname=repmgr sslmode=disable", port))
	if err == nil {
		err = conn.QueryRow(ctx, writeSQL, seq).Scan(&w.Port, &w.Timeline)
		conn.Close(context.Background())
	}
	w.Done = time.Now()
	if err != nil {
		w.Port, w.Err = 0, strings.Join(strings.Fields(err.Error()), " ")
	}
	return w
}

// Stop stops writing and waits for the last attempt.
func (p *WriteProber) Stop() {
	p.cancel()
	<-p.done
}

// Writes returns every attempt so far.
func (p *WriteProber) Writes() []Write {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Write(nil), p.writes...)
}

// Acked returns the acknowledged writes, in order.
func (p *WriteProber) Acked() []Write {
	var out []Write
	for _, w := range p.Writes() {
		if w.Port != 0 {
			out = append(out, w)
		}
	}
	return out
}

// Backends returns the servers that acknowledged writes, in the order writes
// moved to them: [5432] while one primary takes them all, [5432 5433] after
// a clean move. A port that appears twice means writes went back and forth.
func (p *WriteProber) Backends() []int {
	var out []int
	for _, w := range p.Acked() {
		if len(out) == 0 || out[len(out)-1] != w.Port {
			out = append(out, w.Port)
		}
	}
	return out
}

// LongestOutage is the longest time between two acknowledged writes (from
// the first write to acknowledge, to the next one that did), and when it
// started.
func (p *WriteProber) LongestOutage() (time.Duration, time.Time) {
	var longest time.Duration
	var at time.Time
	acked := p.Acked()
	for i := 1; i < len(acked); i++ {
		if d := acked[i].Done.Sub(acked[i-1].Done); d > longest {
			longest, at = d, acked[i-1].Done
		}
	}
	return longest, at
}

// LostWrites returns the sequence numbers of acked writes that n's table
// does not hold: writes acknowledged to a client and lost since.
func LostWrites(ctx context.Context, n *Node, acked []Write) ([]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=repmgr dbname=repmgr sslmode=disable", n.Host, n.PGPort))
	if err != nil {
		return nil, fmt.Errorf("lab: %s: %w", n.Name, err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT seq FROM `+WriteTable)
	if err != nil {
		return nil, fmt.Errorf("lab: %s: read the writes: %w", n.Name, err)
	}
	held := map[int64]bool{}
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			return nil, err
		}
		held[seq] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var lost []int64
	for _, w := range acked {
		if !held[w.Seq] {
			lost = append(lost, w.Seq)
		}
	}
	return lost, nil
}
