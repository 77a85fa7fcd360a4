#pragma once
// What the admin listener answers, from a complete request head to a complete reply, with no
// socket in sight: parse (admin/request.hpp), check access (admin/access.hpp), then route:
// GET /metrics, /status and /; POST /targets/NAME/drain and /enable. Refused requests are
// logged (warn) with the peer and the reason, so an attempt leaves a trace.

#include <string>
#include <string_view>

#include "admin/access.hpp"
#include "common/net.hpp"
#include "common/shared_table.hpp"
#include "conf/config.hpp"

namespace sluice::admin {

class AdminRoutes {
public:
    // `ledger` gives the open connections the reports show (read only).
    AdminRoutes(const Config& config, SharedTable& table, const LoadLedger& ledger);

    // The whole reply (status line, headers, body; "Connection: close") to the request head
    // `head` from `peer`.
    std::string reply(std::string_view head, const net::Endpoint& peer);

private:
    std::string route(const AdminRequest& request);
    // POST /targets/NAME/drain|enable: the reply to send.
    std::string set_draining(const std::string& path);

    const Config& config_;
    SharedTable& table_;  // writes only TargetGroup::draining
    const LoadLedger& ledger_;
    AdminAccess access_;
};

// A reply with a text/plain body, for the listener's own refusals (431, 400).
std::string plain_reply(int status, const std::string& body);

}  // namespace sluice::admin
