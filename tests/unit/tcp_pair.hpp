#pragma once
// A connected TCP pair on loopback for tests of code that works on real sockets.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "common/unique_fd.hpp"

namespace sluice::test {

// `near` (non-blocking: sluice's side) and `far` (blocking: the peer's, with a receive
// timeout that only bounds a failing test).
struct TcpPair {
    UniqueFd near;
    UniqueFd far;
};

inline TcpPair make_pair() {
    UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listener.get(), 1), 0);
    ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    TcpPair pair;
    pair.far.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const timeval patience{30, 0};
    ::setsockopt(pair.far.get(), SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
    EXPECT_EQ(::connect(pair.far.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    pair.near.reset(::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    EXPECT_TRUE(pair.near.valid());
    return pair;
}

}  // namespace sluice::test
