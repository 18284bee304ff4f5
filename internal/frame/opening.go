package frame

import ()

// OpeningFrames tell a client of the kind where its messages of ch start,
// before the first of them (at: the position before them; nil when it is not
// known; recovered: whether a resume got everything, nil without one):
// envelope clients get a subscribed frame, streams an id (a reset event when
// the resume could not be served), raw clients nothing.
func OpeningFrames(k FrameKind, ch string, at *Position, recovered *bool, replaying bool) []*Frame {
	switch k {
	case EnvelopeFrames:
		return []*Frame{SubscribedFrame(ch, at, recovered)}
	case StreamFrames:
		if f := StreamOpening(ch, at, recovered, replaying); f != nil {
			return []*Frame{f}
		}
	}
	return nil
}
