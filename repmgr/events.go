package repmgr

import (
	"context"
	"fmt"
	"time"
)

// Event is one row of repmgr.events: what repmgr did to the cluster
// (promotions, follows, rejoins, registrations), as recorded on this node.
type Event struct {
	NodeID     int       `json:"node_id"`
	NodeName   string    `json:"node_name"`
	Event      string    `json:"event"`
	Successful bool      `json:"successful"`
	Timestamp  time.Time `json:"timestamp"`
	Details    string    `json:"details"`
}

const eventsSQL = `
SELECT e.node_id, coalesce(n.node_name, ''), e.event, e.successful, e.event_timestamp, coalesce(e.details, '')
  FROM repmgr.events e LEFT JOIN repmgr.nodes n USING (node_id)
 ORDER BY e.event_timestamp DESC
 LIMIT $1`

// Events returns the latest limit events, newest first.
func (l *Local) Events(ctx context.Context, limit int) ([]Event, error) {
	if l.views == nil {
		return nil, ErrNoViewConnections
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	rows, err := l.views.Query(ctx, eventsSQL, limit)
	if err != nil {
		return nil, fmt.Errorf("read repmgr.events: %w", err)
	}
	defer rows.Close()
	events := []Event{}
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.NodeID, &e.NodeName, &e.Event, &e.Successful, &e.Timestamp, &e.Details); err != nil {
			return nil, fmt.Errorf("read repmgr.events: %w", err)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read repmgr.events: %w", err)
	}
	return events, nil
}
