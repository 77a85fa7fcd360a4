#include "scripted_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

#include "harness.hpp"

namespace sluice::test {

ScriptedServer::ScriptedServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = listen_loopback(128, port_, "ScriptedServer");
    acceptor_ = std::thread([this] { accept_loop(); });
}

ScriptedServer::~ScriptedServer() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);  // this test-local socket is ours alone
    acceptor_.join();
    ::close(listen_fd_);
    std::lock_guard lock(mutex_);
    for (auto& t : connections_) t.join();
}

void ScriptedServer::accept_loop() {
    for (;;) {
        pollfd pfd{listen_fd_, POLLIN, 0};
        ::poll(&pfd, 1, 100);
        if (stopping_) return;
        if (!(pfd.revents & POLLIN)) continue;
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        std::lock_guard lock(mutex_);
        connections_.emplace_back([this, fd] {
            // Read up to the end of the request head; bytes before the request line (a
            // PROXY header, whose v2 form itself starts with CRLF CRLF) are kept apart.
            std::string head;
            char buffer[4096];
            size_t request_start = std::string::npos;
            auto complete = [&] {
                for (const char* method : {"GET /", "POST /", "HEAD /"}) {
                    request_start = std::min(request_start, head.find(method));
                }
                return request_start != std::string::npos &&
                       head.find("\r\n\r\n", request_start) != std::string::npos;
            };
            while (!complete() && head.size() < 65536) {
                pollfd p{fd, POLLIN, 0};
                if (::poll(&p, 1, 100) == 0) {
                    if (stopping_) break;
                    continue;
                }
                const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
                if (n <= 0) break;
                head.append(buffer, static_cast<size_t>(n));
            }
            if (!complete()) {
                ::close(fd);  // no request: a TCP health check or an aborted client
                return;
            }
            ++requests_;
            {
                std::lock_guard prefix_lock(mutex_);
                last_prefix_ = head.substr(0, request_start);
            }
            const std::string request = head.substr(request_start);
            const auto sp1 = request.find(' ');
            const auto sp2 = request.find(' ', sp1 + 1);
            const std::string path = request.substr(sp1 + 1, sp2 - sp1 - 1);
            if (!stopping_) handler_(fd, path);
            ::close(fd);
        });
    }
}

void ScriptedServer::send_all(int fd, const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
        const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return;
        sent += static_cast<size_t>(n);
    }
}

std::string ScriptedServer::reply(int status, const std::string& body,
                                  const std::string& instance) {
    return "HTTP/1.1 " + std::to_string(status) +
           " X\r\nContent-Length: " + std::to_string(body.size()) + "\r\nX-Instance: " + instance +
           "\r\nConnection: close\r\n\r\n" + body;
}

void ScriptedServer::hang(int fd) const {
    char byte;
    while (!stopping_) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 100) > 0 && ::recv(fd, &byte, 1, 0) <= 0) return;
    }
}

}  // namespace sluice::test
