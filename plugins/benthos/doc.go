// Package benthos holds Vivace's Benthos components: thin adapters that
// parse their config, call the domain packages under internal/ and turn
// results into messages. Importing the package registers them all.
//
// # The metadata protocol
//
// Within a stream, the components talk to each other, and to the
// pipelines' YAML, through message metadata. Metadata does not cross a
// topic: the kafka output writes no headers unless its metadata field
// says so, and the pipelines set none. What a later stage needs travels
// in the record's body (client, file_id, line, part, parts, fields).
//
// Where a record comes from (set by vivace_files on every message it
// reads, ingest stage):
//
//   - vivace_client: the client (tenant) whose file it is.
//   - vivace_file_id: the file's id in the files registry.
//   - vivace_line: the record's line in the file, as decimal text.
//
// vivace_exception reads vivace_client and vivace_file_id when the
// body of a failed message does not name them (a line that could not be
// read), so the exception is still charged to its file. vivace_mediation_plugin
// reads vivace_client to find the client's plugin before it reads the body.
//
// How a record is partitioned:
//
//   - vivace_key: the Kafka record key. vivace_files sets it to the
//     record's account id; vivace_lookup, vivace_split and
//     vivace_mediation_plugin set it again when they set or change the
//     account id, and vivace_normalize sets it to the normal form's
//     account id, so that a record is keyed by the account it ends up
//     with. vivace_exception sets it to the record id of the exception it
//     writes. vivace_aria_feed sets it to the entity id of each core feed
//     event. The pipelines' kafka outputs read it (key: ${! meta("vivace_key") },
//     read directly without interpolating), which keeps each account's
//     records in order on one partition.
//
// Why a record failed (set together by fail, which every component uses
// to fail a record; the message is also marked errored with SetError):
//
//   - vivace_stage: the stage that failed it (ingest, mediate), as the
//     component's stage field says.
//   - vivace_code: its stable exception code (MALFORMED_RECORD,
//     MEDIATION_FAILED, FILTERED, …), absent when the error carries none
//     (vivace_exception then uses its default_code).
//   - vivace_field: the record field at fault, when there is one.
//   - vivace_message: the message for people, naming what was wrong.
//
// The exceptions route: every stream that can fail records ends in a
// switch output whose first case is `check: errored()`. It sends failed
// messages through vivace_exception, which reads the four keys above (and
// the record's body) into an exception message, clears the error, and
// writes it to usage.exceptions; every other message goes on to the next
// topic. A record filtered on purpose takes the same route with code
// FILTERED and is stored as a filtered record. A component never drops a
// record it cannot handle: it fails it, and the route keeps it.
//
// Timer messages:
//
//   - vivace_tick: marks a message from a generate input that asks
//     vivace_correlate to emit the groups that timed out. vivace_correlate
//     consumes it (or, with forward_ticks, passes it on to the next
//     vivace_correlate); no other component sees one.
//
// The kafka input adds kafka_key, kafka_topic, kafka_partition,
// kafka_offset, kafka_timestamp_unix, kafka_timestamp_ms and every record
// header; vivace_catalog reads kafka_topic, kafka_partition and
// kafka_offset to name a feed event it cannot read an id from. The rate
// stage (vivace_rate) writes its exceptions in its own transaction and
// reads none of these keys.
package benthos
