#include "master/listeners.hpp"

#include <exception>
#include <string>

#include "common/log.hpp"

namespace sluice {
namespace {

UniqueFd bind_listener(const net::HostPort& where, int backlog) {
    try {
        return net::listen_tcp(where, backlog);
    } catch (const std::exception& e) {
        throw ListenError("cannot listen on " + where.to_string() + ": " + e.what());
    }
}

}  // namespace

Listeners open_listeners(const Config& config, Listeners* current) {
    Listeners next;
    next.traffic_address = config.listen;
    next.admin_address = config.admin;
    const bool keep_traffic =
        current && current->traffic && current->traffic_address == config.listen;
    const bool keep_admin = current && current->admin && current->admin_address == config.admin;
    // Bind everything new before taking anything from `current`, so that a failure leaves
    // the running sockets as they were.
    if (!keep_traffic) next.traffic = bind_listener(config.listen, kListenBacklog);
    if (config.admin && !keep_admin) next.admin = bind_listener(*config.admin, kAdminBacklog);
    if (current && next.traffic)  // start-up names it in main's first line
        LOG_NOTICE("new listen address %s",
                   net::local_endpoint(next.traffic.get()).to_string().c_str());
    if (next.admin)
        LOG_NOTICE("admin listener on %s: /, /status, /metrics",
                   net::local_endpoint(next.admin.get()).to_string().c_str());
    if (keep_traffic) next.traffic = std::move(current->traffic);
    if (keep_admin) next.admin = std::move(current->admin);
    return next;
}

}  // namespace sluice
