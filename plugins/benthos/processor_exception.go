package benthos

import (
	"context"
	"encoding/json"

	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/usage"
)

func exceptionSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Vivace").
		Summary("Turns a failed usage message into an exception message for the `usage.exceptions` topic.").
		Description(`
Messages that are not failed pass through unchanged. A failed message (one with an error, from
any earlier processor or Bloblang mapping) is replaced by an exception: the record's source
(client, file, line, part), record_id, stage, code, field and message, and the original record.
The code comes from the failing component (metadata `+"`vivace_code`"+`); a failure without
one — for example a Bloblang error in a client's mediation rules — gets `+"`default_code`"+`.
The error is cleared, so the message can be written on like any other.`).
		Field(service.NewStringField("stage").Description("Stage to record when the failure did not name one.").Default("mediate")).
		Field(service.NewStringField("default_code").
			Description("Code for failures that carry none.").
			Default(string(codes.MediationFailed)).
			LintRule(`root = if !["MALFORMED_RECORD","MEDIATION_FAILED","PLUGIN_ERROR","MISSING_FIELD","BAD_QUANTITY","BAD_TIMESTAMP","DUPLICATE_RECORD","UNKNOWN_ACCOUNT","ACCOUNT_CLOSED","UNKNOWN_USAGE_TYPE","NO_SUBSCRIPTION","NO_RATE"].contains(this) { ["default_code must be one of the exception codes of docs/exceptions.md"] }`)).
		Example("Route failures to the exceptions topic", "", `
output:
  switch:
    cases:
      - check: errored()
        output:
          kafka:
            seed_brokers: [ "${VIVACE_KAFKA_BROKERS:127.0.0.1:9092}" ]
            topic: usage.exceptions
          processors:
            - vivace_exception: { stage: mediate }
      - output:
          kafka:
            seed_brokers: [ "${VIVACE_KAFKA_BROKERS:127.0.0.1:9092}" ]
            topic: usage.mediated
`)
}

func init() {
	service.MustRegisterProcessor("vivace_exception", exceptionSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.Processor, error) {
			stage, err := conf.FieldString("stage")
			if err != nil {
				return nil, err
			}
			code, err := conf.FieldString("default_code")
			if err != nil {
				return nil, err
			}
			return &exceptionProc{stage: stage, code: code, log: mgr.Logger(),
				failed: mgr.Metrics().NewCounter("vivace_records_failed", "stage", "code")}, nil
		})
}

type exceptionProc struct {
	stage, code string
	log         *service.Logger
	failed      *service.MetricCounter
}

// recordShape reads both raw and normal-form bodies.
type recordShape struct {
	usage.Source
	RecordID string            `json:"record_id"`
	Fields   map[string]string `json:"fields"`
}

func (p *exceptionProc) Process(_ context.Context, msg *service.Message) (service.MessageBatch, error) {
	ferr := msg.GetError()
	if ferr == nil {
		return service.MessageBatch{msg}, nil
	}
	b, err := msg.AsBytes()
	if err != nil {
		return nil, err
	}
	ex := exceptions.Exception{Stage: p.stage, Code: codes.Code(p.code), Message: ferr.Error()}
	if v, ok := msg.MetaGetMut(metaStage); ok {
		ex.Stage = v.(string)
	}
	if v, ok := msg.MetaGetMut(metaCode); ok {
		ex.Code = codes.Code(v.(string))
	}
	if v, ok := msg.MetaGetMut(metaField); ok {
		ex.Field = v.(string)
	}
	if v, ok := msg.MetaGetMut(metaMessage); ok {
		ex.Message = v.(string)
	}
	var shape recordShape
	if json.Unmarshal(b, &shape) == nil {
		ex.Client, ex.FileID, ex.Line, ex.Part, ex.Parts = shape.Client, shape.FileID, shape.Line, shape.Part, shape.Parts
		ex.RecordID = shape.RecordID
		if shape.Fields != nil {
			ex.RecordID = shape.Fields[usage.FieldRecordID]
			ex.Record, _ = json.Marshal(shape.Fields)
		} else {
			ex.Record = json.RawMessage(b)
		}
	} else {
		// Not a record the stages know: its text for people, its bytes
		// kept as they arrived.
		ex.Record, _ = json.Marshal(map[string]string{"raw": string(b)})
		ex.Raw = b
	}
	// Metadata set by the reader wins over what a mapping left in the body.
	if v, ok := msg.MetaGetMut(metaClient); ok && ex.Client == "" {
		ex.Client = v.(string)
	}
	if v, ok := msg.MetaGetMut(metaFileID); ok && ex.FileID == "" {
		ex.FileID = v.(string)
	}
	out, err := json.Marshal(exceptionMessage(ex))
	if err != nil {
		return nil, err
	}
	p.failed.Incr(1, ex.Stage, string(ex.Code))
	// One line per failed record, at debug: the ids to find it by.
	p.log.With("client", ex.Client, "file_id", ex.FileID, "line", ex.Line, "record_id", ex.RecordID,
		"stage", ex.Stage, "code", string(ex.Code)).Debug("record failed: " + ex.Message)
	msg.SetError(nil)
	msg.SetBytes(out)
	msg.MetaSetMut(metaKey, ex.RecordID)
	return service.MessageBatch{msg}, nil
}

func (p *exceptionProc) Close(context.Context) error { return nil }

// exceptionMsg is the body of a message on usage.exceptions.
type exceptionMsg struct {
	Client   string          `json:"client"`
	FileID   string          `json:"file_id"`
	Line     int64           `json:"line"`
	Part     int             `json:"part"`
	Parts    int             `json:"parts,omitempty"`
	RecordID string          `json:"record_id"`
	Stage    string          `json:"stage"`
	Code     string          `json:"code"`
	Field    string          `json:"field,omitempty"`
	Message  string          `json:"message"`
	Record   json.RawMessage `json:"record"`
	// Raw is the message as the stage received it, when it was not a
	// record the stages know (base64 in the JSON).
	Raw []byte `json:"raw,omitempty"`
}

func exceptionMessage(e exceptions.Exception) exceptionMsg {
	return exceptionMsg{Client: e.Client, FileID: e.FileID, Line: e.Line, Part: e.Part, Parts: e.Parts, RecordID: e.RecordID,
		Stage: e.Stage, Code: string(e.Code), Field: e.Field, Message: e.Message, Record: e.Record, Raw: e.Raw}
}

func (m exceptionMsg) exception() exceptions.Exception {
	return exceptions.Exception{Client: m.Client, FileID: m.FileID, Line: m.Line, Part: m.Part, Parts: m.Parts, RecordID: m.RecordID,
		Stage: m.Stage, Code: codes.Code(m.Code), Field: m.Field, Message: m.Message, Record: m.Record, Raw: m.Raw}
}
