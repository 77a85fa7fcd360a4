#pragma once

// Minimal HTTP/1.1 server-side plumbing for spells-api: an owning fd wrapper,
// request/response types and a connection that reads one request at a time
// (keep-alive and pipelining aware) and writes responses.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spells {

// Owns one file descriptor and closes it exactly once. Move-only so that a
// transfer of ownership (e.g. into a connection thread) is always explicit.
class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    ~UniqueFd() { Reset(); }

    UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) Reset(other.Release());
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;

    int Get() const { return fd_; }
    bool Valid() const { return fd_ >= 0; }
    // Gives up ownership without closing; the caller must close the fd.
    int Release() { return std::exchange(fd_, -1); }
    // Closes the current fd (if any) and takes ownership of `fd`.
    void Reset(int fd = -1);

private:
    int fd_ = -1;
};

// Largest request body accepted; bigger declared bodies get 413.
inline constexpr std::size_t kMaxBodyBytes = 1024 * 1024;
// Largest request line + headers accepted; bigger heads get 431.
inline constexpr std::size_t kMaxHeadBytes = 64 * 1024;

// Returns `s` without leading/trailing spaces, tabs, CRs and LFs.
std::string_view TrimWhitespace(std::string_view s);

// One parsed request. Only what the routes need is kept.
struct Request {
    std::string method;
    std::string target;  // as sent, including any query string
    std::string path;    // target up to (excluding) '?'
    bool http10 = false;
    bool keep_alive = true;  // whether the client allows reusing the connection
    std::string body;
};

struct Response {
    int status = 200;
    std::string content_type = "text/plain";
    std::string body;
    std::vector<std::pair<std::string, std::string>> extra_headers;
};

// Builds a plain-text response whose body is the reason phrase, e.g. "Not Found".
Response TextResponse(int status);

enum class ReadStatus {
    kOk,      // `request` holds a complete request
    kClosed,  // peer closed, reset, timed out or sent a truncated request
    kError,   // malformed/unacceptable request: send `error`, then close
};

struct ReadResult {
    ReadStatus status = ReadStatus::kClosed;
    Request request;
    Response error;
};

// A blocking HTTP/1.x server connection. Bytes read past the end of one
// request are kept for the next one, so pipelined requests work.
class Connection {
public:
    // Takes ownership of a connected socket and applies I/O timeouts so a
    // silent peer cannot pin the serving thread forever.
    explicit Connection(UniqueFd fd);

    // Reads exactly one request (head plus Content-Length body). Never throws
    // on bad input; malformed input yields kError with a response to send.
    ReadResult ReadRequest();

    // Serializes and sends `resp` with X-Instance, Content-Length and the
    // Connection header matching `keep_alive`. Returns false if the peer is
    // gone, in which case the connection must be dropped.
    bool Send(const Response& resp, std::string_view instance, bool keep_alive, bool http10);

    // Half-closes and briefly drains unread input so that an error response
    // is not destroyed by a TCP reset when the peer is still sending.
    void LingeringClose();

private:
    bool SendAll(std::string_view data);
    // Appends whatever the socket has (blocking); false on EOF/error/timeout.
    bool FillBuffer();

    UniqueFd fd_;
    std::string buffer_;
};

}  // namespace spells
