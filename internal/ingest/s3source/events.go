package s3source

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// BucketEvent is one object written, as an S3 event notification names it.
type BucketEvent struct {
	Bucket string
	Key    string
}

// ParseBucketEvents reads an S3 event notification: the JSON that AWS S3,
// MinIO's webhook target and Ceph's HTTP push endpoint send, with a
// Records list. It returns the object-created events, keys decoded (the
// notification writes them URL-encoded); other events (deletions, AWS's
// s3:TestEvent) are left out.
func ParseBucketEvents(body []byte) ([]BucketEvent, error) {
	var n struct {
		Event   string `json:"Event"` // s3:TestEvent when a destination is set up
		Records *[]struct {
			EventName string `json:"eventName"`
			S3        struct {
				Bucket struct {
					Name string `json:"name"`
				} `json:"bucket"`
				Object struct {
					Key string `json:"key"`
				} `json:"object"`
			} `json:"s3"`
		} `json:"Records"`
	}
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, fmt.Errorf("not an S3 event notification: %w", err)
	}
	if n.Records == nil {
		if n.Event != "" {
			return nil, nil
		}
		return nil, errors.New("not an S3 event notification: it has no Records list")
	}
	var out []BucketEvent
	for i, r := range *n.Records {
		name := strings.TrimPrefix(r.EventName, "s3:")
		if !strings.HasPrefix(name, "ObjectCreated:") {
			continue
		}
		if r.S3.Bucket.Name == "" || r.S3.Object.Key == "" {
			return nil, fmt.Errorf("the notification's Records[%d]: s3.bucket.name and s3.object.key are required", i)
		}
		key, err := url.QueryUnescape(r.S3.Object.Key)
		if err != nil {
			return nil, fmt.Errorf("the notification's Records[%d]: s3.object.key %q is not URL-encoded: %w", i, r.S3.Object.Key, err)
		}
		out = append(out, BucketEvent{Bucket: r.S3.Bucket.Name, Key: key})
	}
	return out, nil
}
