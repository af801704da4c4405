package main

// The dashboard's rows: the cluster at a glance, each node's verdict and
// failover state, replication, and pgquorum's own health.

func addOverview(l *layout) {
	l.row("Cluster")
	l.add(4, 4, stat("Confirmed primaries", "Nodes that answer 200 on /state: exactly one is healthy.", "none",
		target{`sum(pgquorum_state{` + cl + `,state="Primary"})`, ""},
		valueText(0, "none", "red", 1, "1", "green", 2, "split brain", "red"),
		thresholds(step(nil, "red"), step(1, "green"), step(2, "red"))))
	l.add(4, 4, stat("Split brain", "1 while a node's survey confirmed several nodes answering 200.", "none",
		target{`max(pgquorum_split_brain{` + cl + `})`, ""},
		valueText(0, "no", "green", 1, "yes", "red"), thresholds(step(nil, "green"), step(1, "red"))))
	l.add(4, 4, stat("Epoch", "Epoch of the latest committed failover decision.", "none",
		target{`max(pgquorum_failover_epoch{` + cl + `})`, ""}, nil, thresholds(step(nil, "blue"))))
	l.add(4, 4, stat("Coordinator", "Whether every node knows a Raft leader (the failover coordinator).", "none",
		target{`min(pgquorum_failover_coordinator_present{` + cl + `})`, ""},
		valueText(0, "missing", "red", 1, "present", "green"), thresholds(step(nil, "red"), step(1, "green"))))
	l.add(4, 4, stat("Automatic failover", "pgquorum pause stops automatic failover cluster-wide.", "none",
		target{`max(pgquorum_failover_paused{` + cl + `})`, ""},
		valueText(0, "active", "green", 1, "paused", "orange"), thresholds(step(nil, "green"), step(1, "orange"))))
	l.add(4, 4, stat("Last primary change", "Time since the latest committed decision that replaced a primary.", "s",
		target{`time() - max(pgquorum_failover_last_promotion_timestamp_seconds{` + cl + `} > 0)`, ""},
		nil, thresholds(step(nil, "orange"), step(3600, "green"))))
}

func addNodes(l *layout) {
	l.row("Nodes")
	l.add(12, 8, stateTimeline("Verdict", "Each node's /state: Primary 200, Standby 202, Unknown 509, Down 503.",
		valueText(3, "Primary", "green", 2, "Standby", "blue", 1, "Unknown", "orange", 0, "Down", "red"),
		target{`3 * sum by (instance) (pgquorum_state{` + sel + `,state="Primary"}) + 2 * sum by (instance) (pgquorum_state{` + sel + `,state="Standby"})` +
			` + sum by (instance) (pgquorum_state{` + sel + `,state="Unknown"})`, "{{instance}}"}))
	l.add(12, 8, stateTimeline("Failover state", "What each node does about failover (Leading, Following, Suspect, Electing, Blocked, Fenced…): one row per node and state.",
		valueText(1, "", "purple"),
		target{`max by (instance, state) (pgquorum_failover_state{` + sel + `}) == 1`, "{{instance}} {{state}}"}))
	l.add(8, 7, timeseries("Votes", "Valid votes for each node, its own included, against the majority it needs.", "none",
		target{`pgquorum_votes{` + sel + `}`, "{{instance}} site"},
		target{`pgquorum_cluster_votes{` + sel + `}`, "{{instance}} cluster"},
		target{`max(pgquorum_cluster_votes_needed{` + sel + `})`, "needed (cluster)"}))
	l.add(8, 7, timeseries("Timeline", "PostgreSQL timeline of each node; 0 while its database is down.", "none",
		target{`pgquorum_timeline{` + sel + `}`, "{{instance}}"}))
	l.add(8, 7, timeseries("Failover blocked, fences", "Why the coordinator may not act (one series per reason kind), and fences recorded in the Raft log.", "none",
		target{`max by (reason) (pgquorum_failover_blocked{` + sel + `}) == 1`, "blocked: {{reason}}"},
		target{`max(increase(pgquorum_failover_fences_total{` + sel + `}[1h]))`, "fences in the last hour"}))
	l.add(12, 7, timeseries("Peers answering", "1 when the peer answered the node's last vote request.", "none",
		target{`pgquorum_peer_up{` + sel + `}`, "{{instance}} → {{peer}}"}))
	l.add(12, 7, timeseries("Verdict changes", "Changes of verdict per 5 minutes.", "none",
		target{`sum by (instance, from, to) (increase(pgquorum_state_transitions_total{` + sel + `}[5m])) > 0`, "{{instance}} {{from}} → {{to}}"}))
}

func addReplication(l *layout) {
	l.row("Replication")
	l.add(12, 7, timeseries("Replication lag", "WAL each standby has yet to replay, against its upstream's last reported WAL end.", "bytes",
		target{`pgquorum_replication_lag_bytes{` + sel + `} >= 0`, "{{instance}}"}))
	l.add(12, 7, timeseries("Replay delay", "Seconds behind the last replayed commit; 0 when all received WAL is replayed.", "s",
		target{`pgquorum_replication_lag_seconds{` + sel + `} >= 0`, "{{instance}}"}))
	// Every node exports the cluster's synchronous state (failover.synchronous):
	// the highest answer stands for the cluster.
	l.add(24, 7, timeseries("Synchronous replication", "With failover.synchronous on or strict: standbys the primary waits for, 1 while it runs asynchronously (RPO not 0), and commits waiting for a standby (SyncRep).", "none",
		target{`max(pgquorum_synchronous_standbys{` + cl + `})`, "synchronous standbys"},
		target{`max(pgquorum_synchronous_degraded{` + cl + `})`, "degraded"},
		target{`max(pgquorum_synchronous_waiting_commits{` + cl + `})`, "commits waiting"}))
}

func addProcess(l *layout) {
	l.row("pgquorum")
	l.add(8, 7, timeseries("Probe age", "Time since the local database last answered a probe.", "s",
		target{`time() - pgquorum_last_successful_probe_timestamp_seconds{` + sel + `}`, "{{instance}}"}))
	l.add(8, 7, timeseries("Refresh duration (p99)", "Time to probe the local node and poll the site.", "s",
		target{`histogram_quantile(0.99, sum by (instance, le) (rate(pgquorum_refresh_duration_seconds_bucket{` + sel + `}[5m])))`, "{{instance}}"}))
	l.add(8, 7, timeseries("Probe errors", "Failed probes of the local database per second.", "ops",
		target{`rate(pgquorum_db_probe_errors_total{` + sel + `}[5m])`, "{{instance}}"}))
	l.add(12, 7, timeseries("HTTP connections", "Open connections of pgquorum's HTTP server, and those closed to stay within its cap.", "none",
		target{`pgquorum_http_connections{` + sel + `}`, "{{instance}} open"},
		target{`rate(pgquorum_http_connections_closed_total{` + sel + `}[5m])`, "{{instance}} closed/s"}))
	l.add(12, 7, timeseries("Database connections", "Open connections of pgquorum's pools to the local database.", "none",
		target{`pgquorum_db_pool_connections{` + sel + `}`, "{{instance}}"}))
}
