package clientcfg

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Source says where a client's usage files come from besides the inbox
// and HTTP upload.
type Source struct {
	S3 *S3Source `yaml:"s3"`

	line    int
	unknown []string
}

// UnmarshalYAML implements yaml.Unmarshaler, noting keys that are no
// kind of source.
func (s *Source) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: source must be a mapping such as s3: {...}", n.Line)
	}
	type plain Source
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*s = Source(p)
	s.line = n.Line
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		switch {
		case k.Value != "s3":
			s.unknown = append(s.unknown, fmt.Sprintf("line %d: %q", k.Line, k.Value))
		case s.S3 != nil:
			s.S3.line = k.Line // errors about the block point at its "s3:"
		}
	}
	return nil
}

// S3Source is a bucket of an S3-compatible store (AWS S3, MinIO, Ceph)
// polled for the client's usage files: every object directly under Prefix.
// Credentials are never written here: the settings name the environment
// variables or the credentials file that hold them.
type S3Source struct {
	// Endpoint is the store's URL, e.g. https://s3.eu-west-1.amazonaws.com
	// or http://minio:9000; without a scheme https is used. Empty means AWS.
	Endpoint  string `yaml:"endpoint"`
	Region    string `yaml:"region"`
	Bucket    string `yaml:"bucket"`
	Prefix    string `yaml:"prefix"`
	PathStyle bool   `yaml:"path_style"`

	AccessKeyIDEnv     string `yaml:"access_key_id_env"`
	SecretAccessKeyEnv string `yaml:"secret_access_key_env"`
	SessionTokenEnv    string `yaml:"session_token_env"`
	CredentialsFile    string `yaml:"credentials_file"`
	Profile            string `yaml:"profile"`

	PollInterval *Duration `yaml:"poll_interval"`
	Settle       *Duration `yaml:"settle"`

	// AfterReceive is leave (the default) or move.
	AfterReceive    string `yaml:"after_receive"`
	ProcessedPrefix string `yaml:"processed_prefix"`
	RejectedPrefix  string `yaml:"rejected_prefix"`

	line    int            // of the s3 block
	lines   map[string]int // of each key in the block
	unknown []string       // keys that are no setting
}

var s3Keys = map[string]bool{
	"endpoint": true, "region": true, "bucket": true, "prefix": true, "path_style": true,
	"access_key_id_env": true, "secret_access_key_env": true, "session_token_env": true,
	"credentials_file": true, "profile": true, "poll_interval": true, "settle": true,
	"after_receive": true, "processed_prefix": true, "rejected_prefix": true,
}

// UnmarshalYAML implements yaml.Unmarshaler, keeping the line of each key
// so that errors can point at it.
func (s *S3Source) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: source.s3 must be a mapping of settings", n.Line)
	}
	type plain S3Source
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*s = S3Source(p)
	s.line = n.Line
	s.lines = map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		s.lines[k.Value] = k.Line
		if !s3Keys[k.Value] {
			s.unknown = append(s.unknown, k.Value)
		}
	}
	return nil
}

// Defaults of a bucket source.
const (
	DefaultPollInterval = 30 * time.Second
	MinPollInterval     = time.Second
	DefaultS3Endpoint   = "https://s3.amazonaws.com"
)

// BucketSource is a validated bucket source with its defaults filled in.
// It is comparable, so a poller can see when the settings changed.
type BucketSource struct {
	Endpoint  string // URL with scheme and host
	Region    string
	Bucket    string
	Prefix    string // "" or ending in "/"
	PathStyle bool

	AccessKeyIDEnv     string
	SecretAccessKeyEnv string
	SessionTokenEnv    string
	CredentialsFile    string // absolute, or relative to the working directory
	Profile            string

	PollInterval time.Duration
	Settle       time.Duration

	Move            bool
	ProcessedPrefix string // ending in "/"
	RejectedPrefix  string // ending in "/"
}

// Location is s3://bucket/prefix, for messages.
func (b BucketSource) Location() string { return "s3://" + b.Bucket + "/" + b.Prefix }

var (
	bucketRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$`)
	envRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// resolve validates s (name is the settings file, where is
// "clients.<client>") and returns it resolved, or the problems found.
func (s *S3Source) resolve(name, where string) (BucketSource, []error) {
	var errs []error
	at := func(field string) string {
		line := s.line
		if l, ok := s.lines[field]; ok {
			line = l
		}
		return fmt.Sprintf("%s: line %d: %s.source.s3.%s", name, line, where, field)
	}
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", at(field), fmt.Sprintf(format, args...)))
	}
	unknown := append([]string(nil), s.unknown...)
	sort.Strings(unknown)
	for _, k := range unknown {
		bad(k, "unknown setting (known: endpoint, region, bucket, prefix, path_style, access_key_id_env, "+
			"secret_access_key_env, session_token_env, credentials_file, profile, poll_interval, settle, "+
			"after_receive, processed_prefix, rejected_prefix)")
	}

	b := BucketSource{Region: s.Region, Bucket: s.Bucket, PathStyle: s.PathStyle,
		AccessKeyIDEnv: s.AccessKeyIDEnv, SecretAccessKeyEnv: s.SecretAccessKeyEnv,
		SessionTokenEnv: s.SessionTokenEnv, Profile: s.Profile, PollInterval: DefaultPollInterval}

	switch {
	case s.Bucket == "":
		bad("bucket", "required")
	case !bucketRE.MatchString(s.Bucket):
		bad("bucket", "%q is not a bucket name (3 to 63 letters, digits, '.', '_' or '-')", s.Bucket)
	}

	b.Endpoint = DefaultS3Endpoint
	if s.Endpoint != "" {
		ep := s.Endpoint
		if !strings.Contains(ep, "://") {
			ep = "https://" + ep
		}
		u, err := url.Parse(ep)
		switch {
		case err != nil || u.Host == "":
			bad("endpoint", "%q is not a URL such as https://s3.eu-west-1.amazonaws.com or http://minio:9000", s.Endpoint)
		case u.Scheme != "http" && u.Scheme != "https":
			bad("endpoint", "%q: scheme must be http or https", s.Endpoint)
		case strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil:
			bad("endpoint", "%q: give only scheme, host and port; the bucket goes in bucket", s.Endpoint)
		default:
			b.Endpoint = u.Scheme + "://" + u.Host
		}
	}

	b.Prefix = dirPrefix(s.Prefix)

	haveEnv := s.AccessKeyIDEnv != "" || s.SecretAccessKeyEnv != ""
	switch {
	case haveEnv && s.CredentialsFile != "":
		bad("credentials_file", "give either access_key_id_env and secret_access_key_env or credentials_file, not both")
	case haveEnv:
		if s.AccessKeyIDEnv == "" {
			bad("access_key_id_env", "required with secret_access_key_env: the name of the environment variable holding the access key id")
		}
		if s.SecretAccessKeyEnv == "" {
			bad("secret_access_key_env", "required with access_key_id_env: the name of the environment variable holding the secret key")
		}
	case s.CredentialsFile != "":
		b.CredentialsFile = s.CredentialsFile
		if !filepath.IsAbs(b.CredentialsFile) && filepath.IsAbs(name) {
			b.CredentialsFile = filepath.Join(filepath.Dir(name), b.CredentialsFile)
		}
	default:
		bad("access_key_id_env", "credentials are required: access_key_id_env and secret_access_key_env (names of environment variables) or credentials_file")
	}
	for field, v := range map[string]string{"access_key_id_env": s.AccessKeyIDEnv,
		"secret_access_key_env": s.SecretAccessKeyEnv, "session_token_env": s.SessionTokenEnv} {
		if v != "" && !envRE.MatchString(v) {
			bad(field, "%q is not an environment variable name; give the variable's name, never the secret itself", v)
		}
	}
	if s.SessionTokenEnv != "" && !haveEnv {
		bad("session_token_env", "only used with access_key_id_env and secret_access_key_env")
	}
	if s.Profile != "" && s.CredentialsFile == "" {
		bad("profile", "only used with credentials_file")
	}

	if s.PollInterval != nil {
		if s.PollInterval.Duration < MinPollInterval {
			bad("poll_interval", "%s is too short; use at least %s", s.PollInterval.Duration, MinPollInterval)
		} else {
			b.PollInterval = s.PollInterval.Duration
		}
	}
	if s.Settle != nil {
		b.Settle = s.Settle.Duration
	}

	switch s.AfterReceive {
	case "", "leave":
		if s.ProcessedPrefix != "" {
			bad("processed_prefix", "only used with after_receive: move")
		}
		if s.RejectedPrefix != "" {
			bad("rejected_prefix", "only used with after_receive: move")
		}
	case "move":
		b.Move = true
		b.ProcessedPrefix, b.RejectedPrefix = b.Prefix+"processed/", b.Prefix+"rejected/"
		if s.ProcessedPrefix != "" {
			b.ProcessedPrefix = dirPrefix(s.ProcessedPrefix)
		}
		if s.RejectedPrefix != "" {
			b.RejectedPrefix = dirPrefix(s.RejectedPrefix)
		}
		if b.ProcessedPrefix == b.Prefix {
			bad("processed_prefix", "%q is the prefix polled for new files; moved objects would be taken again", s.ProcessedPrefix)
		}
		if b.RejectedPrefix == b.Prefix {
			bad("rejected_prefix", "%q is the prefix polled for new files; moved objects would be taken again", s.RejectedPrefix)
		}
	default:
		bad("after_receive", "%q is not leave or move", s.AfterReceive)
	}
	return b, errs
}

// dirPrefix makes a key prefix a folder: no leading '/', one trailing '/'
// (none for the bucket's top).
func dirPrefix(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return ""
	}
	return p + "/"
}

// BucketSources returns the bucket source of every client that has one.
func (f *File) BucketSources() map[string]BucketSource {
	if f == nil {
		return nil
	}
	out := map[string]BucketSource{}
	for k, c := range f.Clients {
		if c.Source == nil || c.Source.S3 == nil {
			continue
		}
		if b, errs := c.Source.S3.resolve(f.name, "clients."+k); len(errs) == 0 {
			out[k] = b
		}
	}
	return out
}
