//go:build ttrpc_old

package peerkit

import (
	"github.com/golang/protobuf/proto"
	"github.com/golang/protobuf/ptypes/wrappers"
)

// stringValue is the status detail the interop service attaches, as the Debian 12
// stack (golang/protobuf 1.3) knows it. Importing wrappers also lets
// status.Details decode it.
func stringValue(s string) proto.Message { return &wrappers.StringValue{Value: s} }
