package benthos

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/usage"
)

// badMessage is a message a stage could not read, and why.
type badMessage struct {
	msg    *service.Message
	body   []byte
	stage  string // the stage that refused it
	reason string
}

// keepBad stores the messages a stage could not read, so that none is
// dropped: one that still says which file it came from (usage.ReadSource)
// becomes a MALFORMED_RECORD exception of that file at the stage, with its
// bytes kept, and moves the file's counts like any other; one that does
// not is kept byte for byte in unreadable_messages with its topic
// position. A replayed message is stored once either way.
func (c *storeConn) keepBad(ctx context.Context, log *service.Logger, bad []badMessage) error {
	if len(bad) == 0 {
		return nil
	}
	var exs []exceptions.Exception
	var unread []exceptions.Unreadable
	for _, m := range bad {
		if src, err := usage.ReadSource(m.body); err == nil {
			exs = append(exs, exceptions.Exception{Client: src.Client, FileID: src.FileID, Line: src.Line, Part: src.Part,
				Stage: m.stage, Code: codes.MalformedRecord, Message: m.reason, Record: m.body, Raw: m.body})
			continue
		}
		topic, _ := m.msg.MetaGet("kafka_topic")
		p, _ := m.msg.MetaGet("kafka_partition")
		o, _ := m.msg.MetaGet("kafka_offset")
		part, perr := strconv.ParseInt(p, 10, 32)
		off, oerr := strconv.ParseInt(o, 10, 64)
		if topic == "" || perr != nil || oerr != nil {
			// Not from a topic: a position of its own.
			topic, part, off = "(no topic) "+store.NewID(), -1, 0
		}
		unread = append(unread, exceptions.Unreadable{Stage: m.stage, Topic: topic, Partition: int32(part), Offset: off,
			Reason: m.reason, Raw: m.body})
	}
	err := dbRetry().Do(ctx, func(ctx context.Context) error {
		if _, err := c.usage().InsertExceptions(c.observing(ctx), exs); err != nil {
			return err
		}
		_, err := c.usage().InsertUnreadable(ctx, unread)
		return err
	})
	if err != nil {
		return fmt.Errorf("keep %d unreadable message(s): %w", len(bad), err)
	}
	log.Errorf("%d message(s) could not be read and were kept (%d as MALFORMED_RECORD exceptions of their files, %d in unreadable_messages); the first: %s: %s",
		len(bad), len(exs), len(unread), bad[0].reason, clipBytes(bad[0].body))
	return nil
}
