#pragma once
// A client connection held open through sluice to an echo target (echo_server.hpp), for tests
// of what happens to connections that are open when something else happens (a reload, a
// stop, a killed worker).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include "harness.hpp"

namespace sluice::test {

// A blocking client connected through sluice to the echo target, after one exchange.
class HeldConnection {
public:
    explicit HeldConnection(uint16_t port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        // Every wait below ends at the first byte, EOF or reset; this only bounds a failure.
        const timeval patience{std::chrono::duration_cast<std::chrono::seconds>(kPatience).count(),
                               0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return;
        sockaddr_in local{};
        socklen_t length = sizeof local;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &length);
        local_port_ = ntohs(local.sin_port);
        if (::send(fd_, kHello, sizeof kHello - 1, MSG_NOSIGNAL) != sizeof kHello - 1) return;
        char echo[sizeof kHello - 1];
        size_t have = 0;
        while (have < sizeof echo) {
            const ssize_t n = ::recv(fd_, echo + have, sizeof echo - have, 0);
            if (n <= 0) return;
            have += static_cast<size_t>(n);
        }
        echoed_ = std::string(echo, have) == kHello;
    }
    ~HeldConnection() { ::close(fd_); }
    HeldConnection(const HeldConnection&) = delete;
    HeldConnection& operator=(const HeldConnection&) = delete;

    bool echoed() const { return echoed_; }
    uint16_t local_port() const { return local_port_; }

    // Blocks until the connection ends: "reset", "EOF", or what else happened.
    std::string how_it_ends() const {
        char byte = 0;
        const ssize_t n = ::recv(fd_, &byte, 1, 0);
        if (n == 0) return "EOF";
        if (n > 0) return "an unexpected byte";
        if (errno == ECONNRESET) return "reset";
        return std::string("error: ") + std::strerror(errno);
    }

    // Ends the connection cleanly from the client's side: sends EOF, reads the echo's.
    std::string finish() const {
        ::shutdown(fd_, SHUT_WR);
        return how_it_ends();
    }

    static constexpr char kHello[] = "hello";

private:
    int fd_ = -1;
    uint16_t local_port_ = 0;
    bool echoed_ = false;
};

}  // namespace sluice::test
