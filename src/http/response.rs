//! Writing response heads: the status line, fields, and the reason
//! phrases. Everything is appended to one buffer so the whole head goes
//! out in one write.

/// The reason phrase of a status code.
pub fn reason(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Appends `HTTP/1.1 CODE REASON\r\n`.
pub fn status_line(buf: &mut Vec<u8>, code: u16) {
    buf.extend_from_slice(b"HTTP/1.1 ");
    buf.extend_from_slice(itoa::Buffer::new().format(code).as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(reason(code).as_bytes());
    buf.extend_from_slice(b"\r\n");
}

/// Appends `Name: value\r\n`.
pub fn header(buf: &mut Vec<u8>, name: &str, value: &str) {
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value.as_bytes());
    buf.extend_from_slice(b"\r\n");
}

/// Appends `Name: N\r\n`.
pub fn header_u64(buf: &mut Vec<u8>, name: &str, n: u64) {
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    buf.extend_from_slice(b"\r\n");
}

/// Ends the head.
pub fn end(buf: &mut Vec<u8>) {
    buf.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_head() {
        let mut b = Vec::new();
        status_line(&mut b, 404);
        header(&mut b, "Content-Type", "text/html");
        header_u64(&mut b, "Content-Length", 12);
        end(&mut b);
        assert_eq!(
            b,
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 12\r\n\r\n"
        );
    }
}
