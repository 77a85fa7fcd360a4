#include "common/net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "common/check.hpp"

namespace sluice::net {

std::string HostPort::to_string() const {
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

std::string HostPort::canonical() const {
    std::string key = to_string();
    for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return key;
}

std::string parse_host_port(std::string_view text, HostPort& out, bool port_zero_ok) {
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) return "missing ']' after the IPv6 address";
        host = text.substr(1, close - 1);
        if (close + 1 >= text.size() || text[close + 1] != ':') return "expected ':PORT' after ']'";
        port = text.substr(close + 2);
        in6_addr probe{};
        if (inet_pton(AF_INET6, std::string(host).c_str(), &probe) != 1)
            return "'" + std::string(host) + "' is not an IPv6 address";
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) return "expected HOST:PORT, found no ':'";
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos)
            return "an IPv6 address must be written in brackets: [ADDRESS]:PORT";
        for (char c : host) {
            const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
            if (!ok) return "invalid character '" + std::string(1, c) + "' in host name";
        }
    }
    if (host.empty()) return "empty host";
    if (host.size() > 253) return "host name longer than 253 characters";
    unsigned value = 0;
    const auto* end = port.data() + port.size();
    const auto [ptr, ec] = std::from_chars(port.data(), end, value);
    const bool digits_only = !port.empty() && ptr == end;
    if (!digits_only || (ec != std::errc() && ec != std::errc::result_out_of_range))
        return "port '" + std::string(port) + "' is not a number";
    if (ec == std::errc::result_out_of_range || (value == 0 && !port_zero_ok) || value > 65535)
        return "port " + std::string(port) + " is out of range (" + (port_zero_ok ? "0" : "1") +
               "-65535)";
    out.host = std::string(host);
    out.port = static_cast<uint16_t>(value);
    return {};
}

void Endpoint::format(char* out, size_t size) const {
    char text[INET6_ADDRSTRLEN] = "?";
    if (family() == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        std::snprintf(out, size, "%s:%u", text, ntohs(in->sin_port));
    } else if (family() == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        std::snprintf(out, size, "[%s]:%u", text, ntohs(in6->sin6_port));
    } else {
        std::snprintf(out, size, "unresolved");
    }
}

std::string Endpoint::to_string() const {
    char text[INET6_ADDRSTRLEN + 16];
    format(text, sizeof text);
    return text;
}

bool Endpoint::operator==(const Endpoint& other) const {
    return length == other.length && std::memcmp(&storage, &other.storage, length) == 0;
}

std::vector<Endpoint> resolve(const HostPort& target, std::string& error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* list = nullptr;
    const std::string port = std::to_string(target.port);
    const int rc = getaddrinfo(target.host.c_str(), port.c_str(), &hints, &list);
    std::vector<Endpoint> out;
    if (rc != 0) {
        error = rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc);
        return out;
    }
    for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
        Endpoint ep;
        std::memcpy(&ep.storage, ai->ai_addr, ai->ai_addrlen);
        ep.length = ai->ai_addrlen;
        if (std::find(out.begin(), out.end(), ep) == out.end()) out.push_back(ep);
    }
    freeaddrinfo(list);
    if (out.empty()) error = "no address";
    return out;
}

UniqueFd listen_tcp(const HostPort& where, int backlog) {
    std::string error;
    const auto addresses = resolve(where, error);
    if (addresses.empty())
        throw std::runtime_error("cannot resolve listen address " + where.to_string() + ": " +
                                 error);
    const Endpoint& ep = addresses.front();
    UniqueFd fd(::socket(ep.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw std::system_error(errno, std::generic_category(), "socket");
    const int one = 1;
    SLUICE_CHECK(::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
    if (::bind(fd.get(), ep.addr(), ep.length) != 0)
        throw std::system_error(errno, std::generic_category(), "bind " + ep.to_string());
    if (::listen(fd.get(), backlog) != 0)
        throw std::system_error(errno, std::generic_category(), "listen " + ep.to_string());
    return fd;
}

int poll_timeout_ms(Deadline deadline, Deadline now) {
    // Compared before subtracting: `deadline - now` could overflow for extreme deadlines.
    if (deadline <= now) return 0;
    constexpr auto kLongest = std::chrono::milliseconds(INT_MAX);
    if (deadline - now >= kLongest) return INT_MAX;
    // Rounded up: a wait that ends a fraction of a millisecond early would only poll again.
    return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count());
}

int wait_ready(int fd, short events, Deadline deadline) {
    pollfd pfd{fd, events, 0};
    for (;;) {
        const int rc = ::poll(&pfd, 1, poll_timeout_ms(deadline));
        if (rc > 0) return 0;
        if (rc < 0 && errno != EINTR) return errno;
        if (rc == 0 && std::chrono::steady_clock::now() >= deadline) return ETIMEDOUT;
    }
}

int send_all(int fd, std::span<const char> bytes, Deadline deadline) {
    size_t sent = 0;
    while (sent < bytes.size()) {
        const ssize_t n =
            ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<size_t>(n);
            continue;
        }
        if (n == 0) return EPIPE;  // not for a non-empty buffer on TCP; never spin on it
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return errno;
        if (const int err = wait_ready(fd, POLLOUT, deadline); err != 0) return err;
    }
    return 0;
}

UniqueFd connect_with_timeout(const Endpoint& to, std::chrono::milliseconds timeout) {
    const Deadline deadline = std::chrono::steady_clock::now() + timeout;
    UniqueFd fd(::socket(to.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return fd;
    if (::connect(fd.get(), to.addr(), to.length) == 0) return fd;
    if (errno != EINPROGRESS) return UniqueFd();
    if (const int err = wait_ready(fd.get(), POLLOUT, deadline); err != 0) {
        errno = err;
        return UniqueFd();
    }
    int error = 0;
    socklen_t len = sizeof error;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &len) != 0) return UniqueFd();
    if (error != 0) {
        errno = error;
        return UniqueFd();
    }
    return fd;
}

namespace {
Endpoint endpoint_of(int fd, int (*get)(int, sockaddr*, socklen_t*)) {
    Endpoint ep;
    socklen_t len = sizeof ep.storage;
    if (get(fd, reinterpret_cast<sockaddr*>(&ep.storage), &len) == 0) ep.length = len;
    return ep;
}
}  // namespace

Endpoint local_endpoint(int fd) { return endpoint_of(fd, ::getsockname); }
Endpoint peer_endpoint(int fd) { return endpoint_of(fd, ::getpeername); }

int reset_on_close(int fd) {
    const linger reset{1, 0};
    return ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset) == 0 ? 0 : errno;
}

}  // namespace sluice::net
