package metering

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
)

// maxDecodedBody bounds the decoded size of a compressed body. Parsing
// keeps memory bounded anyway; this stops a small compressed body that
// expands without end from costing CPU without end.
const maxDecodedBody = 1 << 30

var errDecoderStopped = errors.New("decoder stopped")

// decoder decodes a gzip or deflate body on its own goroutine and writes
// the decoded bytes to a parser. Write feeds the compressed bytes through
// a pipe, so it returns once the goroutine has copied them and memory
// stays bounded by the decompressor's window and one read buffer.
//
// The goroutine is owned by the Call: close ends it and waits for it, and
// the parser is read only after close returns.
type decoder struct {
	pw      *io.PipeWriter
	done    chan struct{}
	err     error // the decode error; written before done is closed
	stopped bool  // the goroutine ended early; later bytes are dropped
}

func newDecoder(encoding string, dst bodyWriter) *decoder {
	pr, pw := io.Pipe()
	d := &decoder{pw: pw, done: make(chan struct{})}
	go d.run(encoding, pr, dst)
	return d
}

func (d *decoder) run(encoding string, pr *io.PipeReader, dst bodyWriter) {
	defer close(d.done)
	d.err = decodeBody(encoding, pr, dst, maxDecodedBody)
	// Make a pending or later write return at once instead of waiting for
	// a reader that is gone.
	pr.CloseWithError(errDecoderStopped)
}

func (d *decoder) write(p []byte) {
	if d.stopped {
		return
	}
	if _, err := d.pw.Write(p); err != nil {
		d.stopped = true
	}
}

// close signals the end of the body, waits for the goroutine and returns
// the decode error, if any.
func (d *decoder) close() error {
	_ = d.pw.Close()
	<-d.done
	return d.err
}

// decodeBody decodes r with the given Content-Encoding into dst, and
// stops with an error past limit decoded bytes. An empty body decodes to
// nothing without error.
func decodeBody(encoding string, r io.Reader, dst bodyWriter, limit int64) error {
	br := bufio.NewReader(r)
	if _, err := br.Peek(1); err == io.EOF {
		return nil
	}

	var src io.Reader
	switch encoding {
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("reading the gzip header: %w", err)
		}
		src = zr
	case "deflate":
		// HTTP deflate is a zlib stream, but some servers send raw
		// deflate data. The zlib header distinguishes the two.
		if header, _ := br.Peek(2); len(header) == 2 && isZlibHeader(header) {
			zr, err := zlib.NewReader(br)
			if err != nil {
				return fmt.Errorf("reading the zlib header: %w", err)
			}
			src = zr
		} else {
			src = flate.NewReader(br)
		}
	default:
		return fmt.Errorf("unsupported content encoding %q", encoding)
	}

	buf := make([]byte, 32<<10)
	var total int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			total += int64(n)
			if total > limit {
				return fmt.Errorf("decoded body is larger than %d bytes", limit)
			}
			dst.write(buf[:n])
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("decoding %s body: %w", encoding, err)
		}
	}
}

// isZlibHeader reports whether b starts a zlib stream (RFC 1950): the
// deflate method, a window of at most 32 KiB, and a header checksum.
func isZlibHeader(b []byte) bool {
	cmf, flg := b[0], b[1]
	return cmf&0x0f == 8 && cmf>>4 <= 7 && (uint16(cmf)<<8|uint16(flg))%31 == 0
}
