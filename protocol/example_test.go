package protocol_test

import (
	"fmt"
	"net/url"

	"github.com/caddy-redis-ws/caddy-redis-ws/protocol"
)

// An envelope client reads each frame with Parse and keeps the position of
// the last message it got, to resume from it after a reconnect.
func ExampleParse() {
	frames := []string{
		`{"type":"subscribed","channel":"chat","offset":41,"epoch":"6755e0a10f3a2"}`,
		`{"channel":"chat","offset":42,"epoch":"6755e0a10f3a2","data":"hi"}`,
		`{"channel":"chat","data_base64":"/wAB"}`,
		`{"type":"join","channel":"chat","user":"alice"}`,
	}
	var at protocol.Position
	for _, b := range frames {
		f, err := protocol.Parse([]byte(b))
		if err != nil {
			fmt.Println(err)
			continue
		}
		switch f.Type {
		case protocol.TypeSubscribed:
			if f.Recovered != nil && !*f.Recovered {
				fmt.Println("messages were missed: reload the state")
			}
			at, _ = f.Position()
		case protocol.TypeMessage:
			if p, ok := f.Position(); ok {
				at = p
			}
			fmt.Printf("message %q, binary %v\n", f.Payload(), f.Binary())
		case protocol.TypeJoin, protocol.TypeLeave:
			fmt.Println(f.User, f.Type)
		}
	}
	fmt.Println("reconnect with ?" + url.Values{"since": {at.String()}}.Encode())
	// Output:
	// message "hi", binary false
	// message "\xff\x00\x01", binary true
	// alice join
	// reconnect with ?since=6755e0a10f3a2%3A42
}

// The id of an event stream of several channels holds a position for each;
// as since= values they resume a WebSocket where the stream was.
func ExampleParseEventID() {
	ps, err := protocol.ParseEventID("room%2Ca@6755e0a10f3a2:42,lobby@0:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	q := url.Values{}
	for _, p := range ps {
		fmt.Printf("%s at %s\n", p.Channel, p.Position)
		q.Add("since", p.String())
	}
	fmt.Println(q.Encode())
	// Output:
	// room,a at 6755e0a10f3a2:42
	// lobby at 0:0
	// since=room%2Ca%406755e0a10f3a2%3A42&since=lobby%400%3A0
}

func ExampleFormatEventID() {
	fmt.Println(protocol.FormatEventID(protocol.ChannelPosition{Position: protocol.Position{Epoch: "6755e0a10f3a2", Offset: 42}}))
	fmt.Println(protocol.FormatEventID(
		protocol.ChannelPosition{Channel: "room a", Position: protocol.Position{Epoch: "6755e0a10f3a2", Offset: 42}},
		protocol.ChannelPosition{Channel: "lobby", Position: protocol.Position{Epoch: protocol.NoHistoryEpoch}},
	))
	// Output:
	// 6755e0a10f3a2:42
	// room%20a@6755e0a10f3a2:42,lobby@0:0
}
