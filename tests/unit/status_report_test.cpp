// The admin renderers on a small snapshot, to the byte, and the snapshot of a table in plain
// memory.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "admin/status_report.hpp"

namespace sluice::admin {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;

// Stats in kTargetStats order: active, connections, connect failures, bytes to target and to
// client.
StatusSnapshot small_snapshot() {
    StatusSnapshot s;
    s.version = "0.1.0";
    s.generation = 3;
    s.reloads = 2;
    s.workers = 4;
    s.connections = 100;
    s.rejected_no_target = 7;
    s.rejected_limit = 1;
    AddressStatus a;
    a.target = "web-1:80";
    a.address = "10.0.0.1:80";
    a.up = true;
    a.last_status = 200;
    a.check_seconds = 0.001234;
    a.stats = {1, 2, 3, 4, 5};
    AddressStatus b;
    b.target = "we\"b:81";
    b.draining = true;
    b.reason = "connection refused";
    b.check_seconds = 0.5;
    b.stats = {0, 20, 30, 40, 50};
    s.addresses = {a, b};
    return s;
}

TEST(StatusReport, PrometheusText) {
    const std::string a = "target=\"web-1:80\",address=\"10.0.0.1:80\"";
    const std::string b = "target=\"we\\\"b:81\",address=\"\"";
    EXPECT_EQ(render_prometheus(small_snapshot()),
              "# HELP sluice_target_up 1 if the address is healthy, else 0.\n"
              "# TYPE sluice_target_up gauge\n"
              "sluice_target_up{" +
                  a +
                  "} 1\n"
                  "sluice_target_up{" +
                  b +
                  "} 0\n"
                  "# HELP sluice_target_active_connections Connections open to the address.\n"
                  "# TYPE sluice_target_active_connections gauge\n"
                  "sluice_target_active_connections{" +
                  a +
                  "} 1\n"
                  "sluice_target_active_connections{" +
                  b +
                  "} 0\n"
                  "# HELP sluice_target_connections_total Connections made to the address.\n"
                  "# TYPE sluice_target_connections_total counter\n"
                  "sluice_target_connections_total{" +
                  a +
                  "} 2\n"
                  "sluice_target_connections_total{" +
                  b +
                  "} 20\n"
                  "# HELP sluice_target_connect_failures_total Connects to the address that failed "
                  "(refused, unreachable, timeout).\n"
                  "# TYPE sluice_target_connect_failures_total counter\n"
                  "sluice_target_connect_failures_total{" +
                  a +
                  "} 3\n"
                  "sluice_target_connect_failures_total{" +
                  b +
                  "} 30\n"
                  "# HELP sluice_target_bytes_total Bytes relayed, by direction.\n"
                  "# TYPE sluice_target_bytes_total counter\n"
                  "sluice_target_bytes_total{" +
                  a +
                  ",direction=\"to_target\"} 4\n"
                  "sluice_target_bytes_total{" +
                  a +
                  ",direction=\"to_client\"} 5\n"
                  "sluice_target_bytes_total{" +
                  b +
                  ",direction=\"to_target\"} 40\n"
                  "sluice_target_bytes_total{" +
                  b +
                  ",direction=\"to_client\"} 50\n"
                  "# HELP sluice_health_check_duration_seconds How long the last health check of "
                  "the address took.\n"
                  "# TYPE sluice_health_check_duration_seconds gauge\n"
                  "sluice_health_check_duration_seconds{" +
                  a +
                  "} 0.001234\n"
                  "sluice_health_check_duration_seconds{" +
                  b +
                  "} 0.500000\n"
                  "# HELP sluice_target_last_failure_info Why the address is, or last was, DOWN "
                  "(value always 1).\n"
                  "# TYPE sluice_target_last_failure_info gauge\n"
                  "sluice_target_last_failure_info{" +
                  b +
                  ",reason=\"connection refused\"} 1\n"
                  "# HELP sluice_connections_total Client connections accepted.\n"
                  "# TYPE sluice_connections_total counter\n"
                  "sluice_connections_total 100\n"
                  "# HELP sluice_rejected_total Client connections turned away, by reason.\n"
                  "# TYPE sluice_rejected_total counter\n"
                  "sluice_rejected_total{reason=\"no_target\"} 7\n"
                  "sluice_rejected_total{reason=\"limit\"} 1\n"
                  "# HELP sluice_workers Worker processes of the serving generation.\n"
                  "# TYPE sluice_workers gauge\n"
                  "sluice_workers 4\n"
                  "# HELP sluice_reloads_total Successful configuration reloads.\n"
                  "# TYPE sluice_reloads_total counter\n"
                  "sluice_reloads_total 2\n"
                  "# HELP sluice_config_generation Generation number of the serving config.\n"
                  "# TYPE sluice_config_generation gauge\n"
                  "sluice_config_generation 3\n"
                  "# HELP sluice_build_info The running version (value always 1).\n"
                  "# TYPE sluice_build_info gauge\n"
                  "sluice_build_info{version=\"0.1.0\"} 1\n");
}

TEST(StatusReport, JsonText) {
    EXPECT_EQ(render_json(small_snapshot()),
              R"({"version":"0.1.0","generation":3,"reloads":2,"workers":4,"connections":100,)"
              R"("rejected":{"no_target":7,"limit":1},"targets":[)"
              R"({"target":"web-1:80","address":"10.0.0.1:80","state":"UP","draining":false,)"
              R"("reason":"","last_status":200,"check_seconds":0.001234,"active_connections":1,)"
              R"("connections":2,"connect_failures":3,"bytes_to_target":4,"bytes_to_client":5},)"
              R"({"target":"we\"b:81","address":"","state":"DOWN","draining":true,)"
              R"("reason":"connection refused","last_status":0,"check_seconds":0.5,)"
              R"("active_connections":0,"connections":20,"connect_failures":30,)"
              R"("bytes_to_target":40,"bytes_to_client":50}]})"
              "\n");
}

TEST(StatusReport, JsonParsesBackWithEveryStat) {
    const auto json = nlohmann::json::parse(render_json(small_snapshot()));
    EXPECT_EQ(json.at("rejected").at("no_target"), 7);
    ASSERT_EQ(json.at("targets").size(), 2u);
    const auto& b = json.at("targets").at(1);
    EXPECT_EQ(b.at("target"), "we\"b:81");
    EXPECT_EQ(b.at("state"), "DOWN");
    EXPECT_EQ(b.at("draining"), true);
    EXPECT_DOUBLE_EQ(b.at("check_seconds").get<double>(), 0.5);
    const StatusSnapshot s = small_snapshot();
    for (size_t i = 0; i < kTargetStats.size(); ++i)
        EXPECT_EQ(b.at(kTargetStats[i].json), s.addresses[1].stats[i]) << kTargetStats[i].json;
}

TEST(StatusReport, JsonSurvivesANameThatIsNotUtf8) {
    StatusSnapshot s = small_snapshot();
    s.addresses[0].target = "bad\xff\n";
    const auto json = nlohmann::json::parse(render_json(s));
    EXPECT_EQ(json.at("targets").at(0).at("target"), "bad\xEF\xBF\xBD\n");
}

TEST(StatusReport, HtmlTable) {
    const std::string html = render_html(small_snapshot());
    EXPECT_THAT(html, HasSubstr("<p>version 0.1.0 &middot; generation 3 &middot; 4 workers "
                                "&middot; 100 connections &middot; 7 answered 503</p>"));
    EXPECT_THAT(
        html,
        EndsWith("<table><caption>Targets (refreshes every 2 s)</caption><tr><th>target</th>"
                 "<th>address</th><th>state</th><th>last failure</th><th>active</th>"
                 "<th>connections</th><th>connect failures</th><th>bytes to target</th>"
                 "<th>bytes to client</th><th>last check</th></tr>\n"
                 "<tr class=\"up\"><td>web-1:80</td><td>10.0.0.1:80</td><td class=\"state\">UP"
                 "</td><td></td><td>1</td><td>2</td><td>3</td><td>4</td><td>5</td>"
                 "<td>200 in 1.2 ms</td></tr>\n"
                 "<tr class=\"down\"><td>we&quot;b:81</td><td></td><td class=\"state\">DOWN "
                 "(draining)</td><td>connection refused</td><td>0</td><td>20</td><td>30</td>"
                 "<td>40</td><td>50</td><td>- in 500.0 ms</td></tr>\n"
                 "</table></body></html>\n"));
}

net::Endpoint endpoint(const std::string& host, uint16_t port) {
    std::string error;
    auto list = net::resolve({host, port}, error);
    EXPECT_FALSE(list.empty()) << error;
    return list.front();
}

TargetConfig target(const std::string& address) {
    TargetConfig t;
    t.address = address;
    EXPECT_EQ(net::parse_host_port(address, t.host_port), "");
    return t;
}

TEST(StatusReport, SnapshotReadsEveryStatOfEveryUsedSlot) {
    auto table = std::make_unique<SharedTable>();  // plain memory: no process shares it
    auto ledger = std::make_unique<LoadLedger>();
    Config config;
    config.targets = {target("127.0.0.1:8001"), target("unknown.invalid:8002")};
    table->generation = 5;
    table->connections = 9;
    table->groups[0].address_count = 2;
    table->slot(0, 0).store_address(endpoint("127.0.0.1", 8001));
    table->slot(0, 1).store_address(endpoint("::1", 8001));
    table->slot(0, 1).up = 1;
    table->slot(0, 1).check_us = 2500;
    table->groups[0].ledger_group = 7;  // the open connections: in the ledger's group 7
    for (size_t i = 0; i < kTargetStats.size(); ++i) {
        if (kTargetStats[i].field == nullptr)
            ledger->groups[7].active[1] = 10 + i;
        else
            table->slot(0, 1).*kTargetStats[i].field = 10 + i;
    }
    table->slot(0, 0).reason = static_cast<uint32_t>(DownReason::refused);

    const StatusSnapshot s = take_snapshot(config, *table, *ledger);
    EXPECT_EQ(s.generation, 5u);
    EXPECT_EQ(s.connections, 9u);
    ASSERT_EQ(s.addresses.size(), 3u);
    EXPECT_EQ(s.addresses[0].address, "127.0.0.1:8001");
    EXPECT_FALSE(s.addresses[0].up);
    EXPECT_EQ(s.addresses[0].reason, "connection refused");
    EXPECT_EQ(s.addresses[1].address, "[::1]:8001");
    EXPECT_TRUE(s.addresses[1].up);
    EXPECT_DOUBLE_EQ(s.addresses[1].check_seconds, 0.0025);
    for (size_t i = 0; i < kTargetStats.size(); ++i)
        EXPECT_EQ(s.addresses[1].stats[i], 10 + i) << kTargetStats[i].json;
    // A target whose name does not resolve shows once, without an address.
    EXPECT_EQ(s.addresses[2].target, "unknown.invalid:8002");
    EXPECT_EQ(s.addresses[2].address, "");
    EXPECT_EQ(s.addresses[2].reason, "unresolved");
}

}  // namespace
}  // namespace sluice::admin
