#include "scripted_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

namespace sluice::test {

ScriptedServer::ScriptedServer(Handler handler) : handler_(std::move(handler)) {}

void ScriptedServer::serve(int fd) {
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
            if (stopping()) break;
            continue;
        }
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        head.append(buffer, static_cast<size_t>(n));
    }
    if (!complete()) return;  // no request: a TCP health check or an aborted client
    ++requests_;
    {
        std::lock_guard lock(mutex_);
        last_prefix_ = head.substr(0, request_start);
    }
    const std::string request = head.substr(request_start);
    const auto sp1 = request.find(' ');
    const auto sp2 = request.find(' ', sp1 + 1);
    const std::string path = request.substr(sp1 + 1, sp2 - sp1 - 1);
    if (!stopping()) handler_(fd, path);
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
    while (!stopping()) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 100) > 0 && ::recv(fd, &byte, 1, 0) <= 0) return;
    }
}

}  // namespace sluice::test
