package benthos

import "strings"

// latencyBuckets are the buckets of every timing (seconds): from a
// millisecond (a processor on one batch) to ten minutes (a large file
// from receipt to done).
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// metricHelp is the help text of every metric the streams report, by its
// name on /metrics. These names are stable: dashboards and alerts use them
// (docs/operations.md, "Metrics"). Every series carries the stream's name
// (`stream`); Benthos' own carry the component's `label` and `path`.
var metricHelp = map[string]string{
	// Benthos' own, per input, processor and output.
	"input_received_total":           "Messages (records) the stream's input read.",
	"input_connection_up_total":      "Times the stream's input connected.",
	"input_connection_failed_total":  "Times the stream's input failed to connect.",
	"input_connection_lost_total":    "Times the stream's input lost its connection.",
	"input_latency_seconds":          "Time from a batch read by the input to its acknowledgement.",
	"processor_received_total":       "Messages a processor received.",
	"processor_batch_received_total": "Batches a processor received.",
	"processor_sent_total":           "Messages a processor passed on.",
	"processor_batch_sent_total":     "Batches a processor passed on.",
	"processor_error_total":          "Messages a processor failed (with an exception code).",
	"processor_latency_seconds":      "Time a processor took over one batch.",
	"output_sent_total":              "Messages (records) the stream's output wrote.",
	"output_batch_sent_total":        "Batches the stream's output wrote.",
	"output_error_total":             "Writes of the stream's output that failed (and are tried again).",
	"output_latency_seconds":         "Time the output took to write one batch (for rate: the rating transaction).",
	"output_connection_up_total":     "Times the stream's output connected.",
	"output_connection_failed_total": "Times the stream's output failed to connect.",
	"output_connection_lost_total":   "Times the stream's output lost its connection.",
	"batch_created_total":            "Batches an output's batching policy made, by what closed them (mechanism).",

	// Vivace's stages.
	"vivace_records_failed_total":                 "Records sent to usage.exceptions, by stage and exception code (FILTERED: on purpose).",
	"vivace_consumer_lag":                         "Records on a partition the stream consumes that it has not had acknowledged downstream yet, by topic and partition.",
	"vivace_ingest_files_read_total":              "Usage files the ingest stage has read to the end.",
	"vivace_ingest_records_read_total":            "Records the ingest stage has read from files.",
	"vivace_ingest_file_duration_seconds":         "Time from a file's claim by the ingest stage to its last record acknowledged by the broker.",
	"vivace_files_done_total":                     "Files finished (records = MURs + exceptions + filtered), by the stream whose transaction finished them.",
	"vivace_file_duration_seconds":                "Time from a file's receipt to done.",
	"vivace_mediation_plugin_records_total":       "Records client plugins mediated.",
	"vivace_mediation_plugin_split_records_total": "Records client plugins split a record into.",
	"vivace_mediation_plugin_filtered_total":      "Records client plugins filtered out.",
	"vivace_mediation_plugin_failed_total":        "Records client plugins failed.",
	"vivace_correlate_held_total":                 "Partial records a correlation rule holds, by rule.",
	"vivace_correlate_emitted_total":              "Correlated records emitted, by rule and outcome.",
	"vivace_correlate_timed_out_total":            "Correlation groups that timed out, by rule.",
	"vivace_correlate_resent_total":               "Correlated records emitted again after a replay, by rule.",
	"vivace_correlate_cleaned_total":              "Correlation groups removed once their records had outcomes, by rule.",
	"vivace_lookup_cache_hits_total":              "Lookup rule keys found in the cache.",
	"vivace_lookup_cache_misses_total":            "Lookup rule keys not in the cache.",
	"vivace_lookup_queries_total":                 "Queries lookup rules sent to the database.",
	"vivace_rate_murs_total":                      "MURs the rate stage stored.",
	"vivace_rate_exceptions_total":                "Exceptions the rate stage stored (catalog checks, duplicates).",
	"vivace_rate_replayed_total":                  "Records the rate stage had already rated (a replay), changing nothing.",
	"vivace_rate_skipped_total":                   "Messages the rate stage could not read as records (kept as exceptions or unreadable messages).",
	"vivace_exceptions_skipped_total":             "Messages on the exceptions topic that were not exceptions (kept as unreadable messages).",
	"vivace_feed_events_applied_total":            "Core feed events applied to the catalog.",
	"vivace_feed_events_ignored_total":            "Core feed events ignored (older than what is stored).",
	"vivace_feed_events_pending_total":            "Core feed events waiting for an entity they depend on.",
	"vivace_feed_events_failed_total":             "Core feed events that failed (docs/feed.md).",
	"vivace_feed_warnings_total":                  "Warnings on applied core feed events.",
	"vivace_aria_feed_skipped_total":              "Data Feed messages skipped as not mapped onto feed events.",
	"vivace_api_usage_records_read_total":         "Usages posted to the TMF635 API that the ingest stage has read.",
	"vivace_split_records_total":                  "Records a vivace_split rule made out of split lines.",
	"vivace_sync_skipped_total":                   "Messages of mur.sync.batches skipped as not a batch, or a batch the database does not have.",
	"vivace_sync_batches_total":                   "MUR sync batches the core answered, by status (done, failed).",
	"vivace_sync_records_synced_total":            "Aggregated records synced to the core.",
	"vivace_sync_records_failed_total":            "Aggregated records that failed, by the core's code (or the batch's).",
}

// help is the help text of a metric: its entry above, else what it is.
func help(name, kind string) string {
	if h, ok := metricHelp[name]; ok {
		return h
	}
	return "Benthos " + kind + " " + strings.TrimSuffix(name, "_total") + " (no description yet)."
}
