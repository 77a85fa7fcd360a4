#include "http.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <optional>

namespace spells {
namespace {

constexpr int kIdleTimeoutSeconds = 60;
constexpr int kSendTimeoutSeconds = 30;

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// RFC 9110 "token": the allowed syntax for methods and header names.
bool IsToken(std::string_view s) {
    static constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) ||
               kExtra.find(c) != std::string_view::npos;
    });
}

// True if the comma-separated header value contains `token` (any case).
bool HasToken(std::string_view value, std::string_view token) {
    while (!value.empty()) {
        size_t comma = value.find(',');
        if (EqualsIgnoreCase(TrimWhitespace(value.substr(0, comma)), token)) return true;
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
    }
    return false;
}

void SetTimeout(int fd, int option, int seconds) {
    timeval tv{};
    tv.tv_sec = seconds;
    setsockopt(fd, SOL_SOCKET, option, &tv, sizeof(tv));
}

const char* Reason(int status) {
    switch (status) {
        case 100: return "Continue";
        case 200: return "OK";
        case 201: return "Created";
        case 400: return "Bad Request";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 411: return "Length Required";
        case 413: return "Payload Too Large";
        case 431: return "Request Header Fields Too Large";
        case 505: return "HTTP Version Not Supported";
        default: return "Internal Server Error";
    }
}

// Head of a request as parsed by ParseHead.
struct Head {
    Request request;
    std::size_t content_length = 0;
    bool expect_continue = false;
};

bool ParseRequestLine(std::string_view line, Request& req, int& error) {
    size_t sp1 = line.find(' ');
    size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
        return false;
    }
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);
    if (!IsToken(method) || target.empty() || target.front() != '/') return false;
    if (std::any_of(target.begin(), target.end(),
                    [](char c) { return std::iscntrl(static_cast<unsigned char>(c)); })) {
        return false;
    }
    if (version == "HTTP/1.1") {
        req.http10 = false;
    } else if (version == "HTTP/1.0") {
        req.http10 = true;
    } else {
        // Looks like HTTP but a version we do not speak: say so explicitly.
        bool http_like = version.size() == 8 && version.substr(0, 5) == "HTTP/" &&
                         std::isdigit(static_cast<unsigned char>(version[5])) &&
                         version[6] == '.' && std::isdigit(static_cast<unsigned char>(version[7]));
        if (http_like) error = 505;
        return false;
    }
    req.method = method;
    req.target = target;
    req.path = target.substr(0, target.find('?'));
    return true;
}

// Parses the request line and headers (`head` excludes the blank line).
// Returns 0 on success, otherwise the status code to reject the request with.
int ParseHead(std::string_view head, Head& out) {
    bool first = true;
    bool conn_close = false;
    bool conn_keep_alive = false;
    std::optional<std::size_t> content_length;
    while (!head.empty()) {
        size_t nl = head.find('\n');
        std::string_view line = head.substr(0, nl);
        head.remove_prefix(nl == std::string_view::npos ? head.size() : nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (first) {
            int error = 400;
            if (!ParseRequestLine(line, out.request, error)) return error;
            first = false;
            continue;
        }
        size_t colon = line.find(':');
        // A missing name, whitespace before the colon or obsolete line
        // folding all fail the token check.
        if (colon == std::string_view::npos || !IsToken(line.substr(0, colon))) return 400;
        std::string_view name = line.substr(0, colon);
        std::string_view value = TrimWhitespace(line.substr(colon + 1));
        if (EqualsIgnoreCase(name, "content-length")) {
            if (value.empty() || !std::all_of(value.begin(), value.end(), [](char c) {
                    return std::isdigit(static_cast<unsigned char>(c));
                })) {
                return 400;
            }
            if (value.size() > 9) return 413;  // certainly over the limit
            std::size_t n = std::stoul(std::string(value));
            if (content_length && *content_length != n) return 400;
            content_length = n;
        } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
            return 411;  // chunked bodies are not supported; ask for a length
        } else if (EqualsIgnoreCase(name, "connection")) {
            conn_close = conn_close || HasToken(value, "close");
            conn_keep_alive = conn_keep_alive || HasToken(value, "keep-alive");
        } else if (EqualsIgnoreCase(name, "expect")) {
            out.expect_continue = EqualsIgnoreCase(value, "100-continue");
        }
    }
    if (first) return 400;
    out.content_length = content_length.value_or(0);
    if (out.content_length > kMaxBodyBytes) return 413;
    Request& req = out.request;
    req.keep_alive = req.http10 ? (conn_keep_alive && !conn_close) : !conn_close;
    return 0;
}

// Finds the blank line ending a request head. Returns {offset of the head's
// end (exclusive), offset of the first byte after the blank line}, or nullopt.
// Bare LF line endings are tolerated.
std::optional<std::pair<size_t, size_t>> FindHeadEnd(std::string_view buf) {
    size_t crlf = buf.find("\n\r\n");
    size_t lf = buf.find("\n\n");
    if (crlf == std::string_view::npos && lf == std::string_view::npos) return std::nullopt;
    if (lf < crlf) return std::make_pair(lf + 1, lf + 2);
    return std::make_pair(crlf + 1, crlf + 3);
}

}  // namespace

void UniqueFd::Reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

std::string_view TrimWhitespace(std::string_view s) {
    static constexpr std::string_view kWs = " \t\r\n";
    size_t begin = s.find_first_not_of(kWs);
    if (begin == std::string_view::npos) return {};
    size_t end = s.find_last_not_of(kWs);
    return s.substr(begin, end - begin + 1);
}

Response TextResponse(int status) {
    Response resp;
    resp.status = status;
    resp.body = Reason(status);
    return resp;
}

Connection::Connection(UniqueFd fd) : fd_(std::move(fd)) {
    SetTimeout(fd_.Get(), SO_RCVTIMEO, kIdleTimeoutSeconds);
    SetTimeout(fd_.Get(), SO_SNDTIMEO, kSendTimeoutSeconds);
    int one = 1;
    setsockopt(fd_.Get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

ReadResult Connection::ReadRequest() {
    ReadResult result;
    std::optional<std::pair<size_t, size_t>> end;
    for (;;) {
        // Stray CRLFs between requests are allowed (RFC 9112 section 2.2).
        size_t start = buffer_.find_first_not_of("\r\n");
        buffer_.erase(0, start == std::string::npos ? buffer_.size() : start);
        end = FindHeadEnd(buffer_);
        if (end || buffer_.size() > kMaxHeadBytes) break;
        if (!FillBuffer()) return result;  // kClosed, even if truncated
    }
    if (!end || end->first > kMaxHeadBytes) {
        result.status = ReadStatus::kError;
        result.error = TextResponse(431);
        return result;
    }

    Head head;
    int error = ParseHead(std::string_view(buffer_).substr(0, end->first), head);
    buffer_.erase(0, end->second);
    if (error != 0) {
        result.status = ReadStatus::kError;
        result.error = TextResponse(error);
        return result;
    }

    const std::size_t length = head.content_length;
    if (head.expect_continue && buffer_.size() < length &&
        !SendAll("HTTP/1.1 100 Continue\r\n\r\n")) {
        return result;
    }
    while (buffer_.size() < length) {
        if (!FillBuffer()) return result;
    }
    head.request.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    result.status = ReadStatus::kOk;
    result.request = std::move(head.request);
    return result;
}

bool Connection::Send(const Response& resp, std::string_view instance, bool keep_alive,
                      bool http10) {
    std::string out;
    out.reserve(256 + resp.body.size());
    out += "HTTP/1.1 " + std::to_string(resp.status) + " " + Reason(resp.status) + "\r\n";
    out += "Content-Type: " + resp.content_type + "\r\n";
    out += "Content-Length: " + std::to_string(resp.body.size()) + "\r\n";
    out += "X-Instance: ";
    out += instance;
    out += "\r\n";
    for (const auto& [name, value] : resp.extra_headers) {
        out += name + ": " + value + "\r\n";
    }
    if (!keep_alive) {
        out += "Connection: close\r\n";
    } else if (http10) {
        out += "Connection: keep-alive\r\n";  // HTTP/1.0 closes unless told otherwise
    }
    out += "\r\n";
    out += resp.body;
    return SendAll(out);
}

void Connection::LingeringClose() {
    ::shutdown(fd_.Get(), SHUT_WR);
    SetTimeout(fd_.Get(), SO_RCVTIMEO, 1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    char sink[16384];
    while (std::chrono::steady_clock::now() < deadline) {
        ssize_t n = ::recv(fd_.Get(), sink, sizeof(sink), 0);
        if (n > 0 || (n < 0 && errno == EINTR)) continue;
        break;
    }
    fd_.Reset();
}

bool Connection::SendAll(std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::send(fd_.Get(), data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

bool Connection::FillBuffer() {
    char chunk[16384];
    for (;;) {
        ssize_t n = ::recv(fd_.Get(), chunk, sizeof(chunk), 0);
        if (n > 0) {
            buffer_.append(chunk, static_cast<size_t>(n));
            return true;
        }
        if (n < 0 && errno == EINTR) continue;
        return false;
    }
}

}  // namespace spells
