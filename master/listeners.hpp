#pragma once
// The master's listening sockets, opened by one function at start and on every reload (as
// nginx's ngx_open_listening_sockets serves both): a socket whose address did not change is
// kept, so a reload never closes what clients are connecting to.

#include <optional>
#include <stdexcept>

#include "common/net.hpp"
#include "common/unique_fd.hpp"
#include "conf/config.hpp"

namespace sluice {

// Kernel accept queues: the traffic listener absorbs bursts while every worker thread is
// busy (and a reload's switch-over); the admin listener serves a few scrapers.
inline constexpr int kListenBacklog = 4096;
inline constexpr int kAdminBacklog = 64;

struct Listeners {
    net::HostPort traffic_address;
    UniqueFd traffic;
    std::optional<net::HostPort> admin_address;
    UniqueFd admin;  // invalid when no `admin` is configured
};

// A listening socket that could not be opened; what() names the address and the reason.
class ListenError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The sockets `config` asks for. Those whose address equals one in `current` are moved out of
// it; the others are bound anew. Throws ListenError, leaving `current` untouched, if one
// cannot be bound. `current` may be null (start-up).
Listeners open_listeners(const Config& config, Listeners* current);

}  // namespace sluice
