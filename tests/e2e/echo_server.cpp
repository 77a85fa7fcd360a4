#include "echo_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace sluice::test {

// Blocking sends, but never blocked for more than 100 ms without looking at `stopping_`.
bool EchoServer::send_all(int fd, const char* data, size_t size) {
    size_t sent = 0;
    while (sent < size) {
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, 100) == 0) {
            if (server_.stopping()) return false;
            continue;
        }
        const ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent += static_cast<size_t>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            continue;
        } else {
            return false;
        }
    }
    return true;
}

void EchoServer::serve(int fd) {
    std::vector<char> buffer(64 * 1024);
    bool any = false;
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 100) == 0) {
            if (server_.stopping()) break;
            continue;
        }
        const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (n > 0) {
            if (!any) {
                any = true;
                ++with_data_;
            }
            if (!send_all(fd, buffer.data(), static_cast<size_t>(n))) break;
            bytes_ += static_cast<uint64_t>(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n == 0) {  // the peer half-closed: everything it sent has been echoed
            ::shutdown(fd, SHUT_WR);
            if (any) ++completed_;
            return;
        }
        break;  // a reset or another error
    }
    if (any) ++failed_;
}

}  // namespace sluice::test
