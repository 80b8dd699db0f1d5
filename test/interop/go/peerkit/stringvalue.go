//go:build !ttrpc_old

package peerkit

import (
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// stringValue is the status detail the interop service attaches. Importing
// wrapperspb also lets status.Details decode it.
func stringValue(s string) protoadapt.MessageV1 { return wrapperspb.String(s) }
