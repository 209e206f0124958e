package relay

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"
)

// maxChunkLine bounds a chunk-size line or a trailer line.
const maxChunkLine = 4096

// errBadChunk reports a chunked body that does not parse.
var errBadChunk = errors.New("malformed chunked body")

// chunkedBody passes a chunked request body through verbatim and ends
// exactly at its last byte (the empty line after the trailers), so that a
// request pipelined behind it is never carried upstream.
type chunkedBody struct {
	r    *bufio.Reader
	left int64 // bytes of the current chunk's data still to pass
	crlf bool  // the CRLF after a chunk's data is due
	done bool
	out  []byte // a parsed line waiting to be passed on
}

func newChunkedBody(r io.Reader) *chunkedBody {
	return &chunkedBody{r: bufio.NewReaderSize(r, maxChunkLine)}
}

func (c *chunkedBody) line() (string, error) {
	l, err := c.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || (err == nil && (len(l) < 2 || l[len(l)-2] != '\r')) {
		return "", errBadChunk
	}
	if err != nil {
		return "", err
	}
	return string(l), nil
}

func (c *chunkedBody) Read(p []byte) (int, error) {
	for {
		if len(c.out) > 0 {
			n := copy(p, c.out)
			c.out = c.out[n:]
			return n, nil
		}
		if c.left > 0 {
			if int64(len(p)) > c.left {
				p = p[:c.left]
			}
			n, err := c.r.Read(p)
			c.left -= int64(n)
			if errors.Is(err, io.EOF) && c.left > 0 {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
		if c.crlf {
			var two [2]byte
			if _, err := io.ReadFull(c.r, two[:]); err != nil || two != [2]byte{'\r', '\n'} {
				return 0, errBadChunk
			}
			c.crlf = false
			c.out = []byte("\r\n")
			continue
		}
		if c.done {
			return 0, io.EOF
		}
		l, err := c.line()
		if err != nil {
			return 0, err
		}
		size, _, _ := strings.Cut(strings.TrimRight(l, "\r\n"), ";")
		n, perr := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
		if perr != nil || n < 0 || size == "" || strings.HasPrefix(size, "+") || strings.HasPrefix(size, "-") {
			return 0, errBadChunk
		}
		c.out = []byte(l)
		if n > 0 {
			c.left, c.crlf = n, true
			continue
		}
		// Last chunk: pass the trailers and the final empty line.
		for {
			t, err := c.line()
			if err != nil {
				return 0, err
			}
			c.out = append(c.out, t...)
			if t == "\r\n" {
				break
			}
			if len(c.out) > maxChunkLine*4 {
				return 0, errBadChunk
			}
		}
		c.done = true
	}
}
