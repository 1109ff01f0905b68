package mediation

import (
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/go-plugin"
)

// ProtocolVersion is the newest version of the contract this package
// speaks. It changes only when a plugin built for the previous version
// could no longer be understood (docs/plugins.md, "Versioning"). Version
// 2 packs a batch's records into one buffer (mediationv2); a plugin built
// with this package serves version 1 too, for hosts that know only that.
const ProtocolVersion = 2

// SupportedVersions lists the protocol versions the host accepts, oldest
// first.
var SupportedVersions = []int{1, 2}

// SupportedVersionsText is SupportedVersions for messages: "1" or "1, 2".
func SupportedVersionsText() string {
	s := make([]string, len(SupportedVersions))
	for i, v := range SupportedVersions {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ", ")
}

// Handshake is what the host and a plugin check before they talk: the
// magic cookie tells a plugin it was started by a Vivace host (run by
// hand it says so and exits), and the protocol version which contract it
// speaks.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "VIVACE_MEDIATION_PLUGIN",
	MagicCookieValue: "b7d3f0e2-mediation",
}

// PluginName is the one plugin a mediation plugin binary serves.
const PluginName = "mediator"

// MaxMessageBytes bounds one request or answer on the wire, both ways.
// gRPC's own default (4 MiB) is too small for large batches of wide
// records.
const MaxMessageBytes = 256 << 20

// FlowWindowBytes is the HTTP/2 flow-control window on both sides. A batch
// of a thousand records is a few hundred kilobytes; with gRPC's default
// window it would cross the process boundary in several round trips of
// window updates, each a wake-up of both processes.
const FlowWindowBytes = 16 << 20

// PluginMap is the host's plugin set for protocol version 1: the plugin's
// name with an adapter that has no implementation (the host only
// dispenses clients).
var PluginMap = plugin.PluginSet{PluginName: &GRPCPlugin{}}

// PluginMapV2 is PluginMap for protocol version 2.
var PluginMapV2 = plugin.PluginSet{PluginName: &GRPCPluginV2{}}

// VersionedPlugins maps every supported protocol version to its plugin
// set, for plugin.ClientConfig.VersionedPlugins.
func VersionedPlugins() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{1: PluginMap, 2: PluginMapV2}
}

// IsSupported reports whether the host accepts protocol version v.
func IsSupported(v int) bool { return slices.Contains(SupportedVersions, v) }
