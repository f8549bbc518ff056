package sockets

import (
	"fmt"
	"strings"
	"testing"

	"github.com/portclaim/portclaim/pkg/endpoint"
)

// procNetTCP renders n sockets the way /proc/net/tcp does: half listening,
// half established.
func procNetTCP(n int) []byte {
	var b strings.Builder
	b.WriteString("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
	for i := 0; i < n; i++ {
		st := "0A"
		if i%2 == 1 {
			st = "01"
		}
		fmt.Fprintf(&b, "%4d: 0100007F:%04X 00000000:0000 %s 00000000:00000000 00:00000000 00000000  1000        0 %d 1 0000000092aeb971 100 0 0 10 0\n",
			i, 1024+i%60000, st, 100000+i)
	}
	return []byte(b.String())
}

// BenchmarkParseProcNet parses a 100,000-socket /proc/net/tcp.
func BenchmarkParseProcNet(b *testing.B) {
	data := procNetTCP(100_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, endpoint.TCP, false, false); err != nil {
			b.Fatal(err)
		}
	}
}
