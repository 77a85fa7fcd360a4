#include "admin/status_report.hpp"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace sluice::admin {
namespace {

std::string escape_label(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

std::string escape_html(const std::string& text) {
    std::string out;
    for (char c : text) {
        switch (c) {
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '&': out += "&amp;"; break;
            case '"': out += "&quot;"; break;
            default: out += c;
        }
    }
    return out;
}

std::string number(double v) {
    char text[32];
    std::snprintf(text, sizeof text, "%.6f", v);
    return text;
}

std::string milliseconds(double seconds) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f", seconds * 1000);
    return text;
}

}  // namespace

StatusSnapshot take_snapshot(const Config& config, const SharedTable& table,
                             const LoadLedger& ledger) {
    StatusSnapshot s;
    s.version = SLUICE_VERSION;
    s.generation = table.generation.load();
    s.reloads = table.reloads.load();
    s.workers = table.workers.load();
    s.connections = table.connections.load();
    s.rejected_no_target = table.rejected_no_target.load();
    s.rejected_limit = table.rejected_limit.load();
    for (size_t t = 0; t < config.targets.size(); ++t) {
        const size_t count =
            std::min<size_t>(table.groups[t].address_count.load(), kAddressesPerTarget);
        for (size_t a = 0; a < std::max<size_t>(count, 1); ++a) {
            const TargetSlot& slot = table.slot(t, a);
            AddressStatus st;
            st.target = config.targets[t].address;
            net::Endpoint address;
            if (a < count && slot.load_address(address))
                st.address = address.to_string();
            else if (count > 0)
                continue;  // a freed slot between used ones
            st.up = a < count && slot.up.load() != 0;
            st.draining = table.groups[t].draining.load() != 0;
            const auto reason = static_cast<DownReason>(slot.reason.load());
            st.reason = reason == DownReason::none ? "" : down_reason_name(reason);
            if (count == 0) st.reason = down_reason_name(DownReason::unresolved);
            st.last_status = static_cast<int>(slot.last_status.load());
            st.check_seconds = slot.check_us.load() / 1e6;
            for (size_t i = 0; i < kTargetStats.size(); ++i)
                st.stats[i] =
                    stat_value(kTargetStats[i], table, ledger, SharedTable::slot_index(t, a));
            s.addresses.push_back(std::move(st));
        }
    }
    return s;
}

namespace {

void family(std::string& out, const char* name, const char* type, const char* help) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

std::string address_labels(const AddressStatus& a) {
    return "target=\"" + escape_label(a.target) + "\",address=\"" + escape_label(a.address) + "\"";
}

const char* type_name(StatType type) { return type == StatType::counter ? "counter" : "gauge"; }

// Every kTargetStats family: HELP and TYPE once, then for each address one sample per entry
// of the family (adjacent entries share a family and differ by their extra label).
void render_target_stats(std::string& out, const StatusSnapshot& s) {
    for (size_t first = 0, last = 0; first < kTargetStats.size(); first = last) {
        const std::string metric = kTargetStats[first].metric;
        while (last < kTargetStats.size() && metric == kTargetStats[last].metric) ++last;
        family(out, kTargetStats[first].metric, type_name(kTargetStats[first].type),
               kTargetStats[first].help);
        for (const AddressStatus& a : s.addresses) {
            for (size_t i = first; i < last; ++i) {
                const std::string label = kTargetStats[i].label;
                out += metric + "{" + address_labels(a) + (label.empty() ? "" : ",") + label +
                       "} " + std::to_string(a.stats[i]) + "\n";
            }
        }
    }
}

// The whole-balancer families, after the per-address ones.
void render_balancer_stats(std::string& out, const StatusSnapshot& s) {
    family(out, "sluice_connections_total", "counter", "Client connections accepted.");
    out += "sluice_connections_total " + std::to_string(s.connections) + "\n";
    family(out, "sluice_rejected_total", "counter", "Client connections turned away, by reason.");
    out += "sluice_rejected_total{reason=\"no_target\"} " + std::to_string(s.rejected_no_target) +
           "\n";
    out += "sluice_rejected_total{reason=\"limit\"} " + std::to_string(s.rejected_limit) + "\n";
    family(out, "sluice_workers", "gauge", "Worker processes of the serving generation.");
    out += "sluice_workers " + std::to_string(s.workers) + "\n";
    family(out, "sluice_reloads_total", "counter", "Successful configuration reloads.");
    out += "sluice_reloads_total " + std::to_string(s.reloads) + "\n";
    family(out, "sluice_config_generation", "gauge", "Generation number of the serving config.");
    out += "sluice_config_generation " + std::to_string(s.generation) + "\n";
    family(out, "sluice_build_info", "gauge", "The running version (value always 1).");
    out += "sluice_build_info{version=\"" + escape_label(s.version) + "\"} 1\n";
}

// One row of the admin page: the address, its state, every kTargetStats entry, its last check.
std::string html_row(const AddressStatus& a) {
    std::string row = std::string("<tr class=\"") + (a.up ? "up" : "down") + "\"><td>" +
                      escape_html(a.target) + "</td><td>" + escape_html(a.address) +
                      "</td><td class=\"state\">" + (a.up ? "UP" : "DOWN") +
                      (a.draining ? " (draining)" : "") + "</td><td>" + escape_html(a.reason) +
                      "</td>";
    for (const uint64_t value : a.stats) row += "<td>" + std::to_string(value) + "</td>";
    return row + "<td>" + (a.last_status ? std::to_string(a.last_status) : std::string("-")) +
           " in " + milliseconds(a.check_seconds) + " ms</td></tr>\n";
}

std::string html_heading() {
    std::string heading = "<tr><th>target</th><th>address</th><th>state</th><th>last failure</th>";
    for (const TargetStat& stat : kTargetStats)
        heading += std::string("<th>") + stat.column + "</th>";
    return heading + "<th>last check</th></tr>\n";
}

}  // namespace

std::string render_prometheus(const StatusSnapshot& s) {
    std::string out;
    family(out, "sluice_target_up", "gauge", "1 if the address is healthy, else 0.");
    for (const AddressStatus& a : s.addresses)
        out += "sluice_target_up{" + address_labels(a) + "} " + (a.up ? "1" : "0") + "\n";
    render_target_stats(out, s);
    family(out, "sluice_health_check_duration_seconds", "gauge",
           "How long the last health check of the address took.");
    for (const AddressStatus& a : s.addresses) {
        out += "sluice_health_check_duration_seconds{" + address_labels(a) + "} " +
               number(a.check_seconds) + "\n";
    }
    family(out, "sluice_target_last_failure_info", "gauge",
           "Why the address is, or last was, DOWN (value always 1).");
    for (const AddressStatus& a : s.addresses) {
        if (a.reason.empty()) continue;
        out += "sluice_target_last_failure_info{" + address_labels(a) + ",reason=\"" +
               escape_label(a.reason) + "\"} 1\n";
    }
    render_balancer_stats(out, s);
    return out;
}

std::string render_json(const StatusSnapshot& s) {
    using Json = nlohmann::ordered_json;
    Json targets = Json::array();
    for (const AddressStatus& a : s.addresses) {
        Json target = {{"target", a.target},
                       {"address", a.address},
                       {"state", a.up ? "UP" : "DOWN"},
                       {"draining", a.draining},
                       {"reason", a.reason},
                       {"last_status", a.last_status},
                       {"check_seconds", a.check_seconds}};
        for (size_t i = 0; i < kTargetStats.size(); ++i) target[kTargetStats[i].json] = a.stats[i];
        targets.push_back(std::move(target));
    }
    const Json out = {
        {"version", s.version},
        {"generation", s.generation},
        {"reloads", s.reloads},
        {"workers", s.workers},
        {"connections", s.connections},
        {"rejected", {{"no_target", s.rejected_no_target}, {"limit", s.rejected_limit}}},
        {"targets", std::move(targets)}};
    // A name that is not UTF-8 is shown with U+FFFD rather than failing the request.
    return out.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

std::string render_html(const StatusSnapshot& s) {
    std::string rows;
    for (const AddressStatus& a : s.addresses) rows += html_row(a);
    return "<!doctype html>\n<html><head><meta charset=\"utf-8\">"
           "<meta http-equiv=\"refresh\" content=\"2\"><title>sluice</title><style>"
           "body{font-family:sans-serif;margin:2em;color:#222}"
           "table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid "
           "#ddd;white-space:nowrap;"
           "text-align:left}tr.up .state{color:#fff;background:#2a7}"
           "tr.down .state{color:#fff;background:#c33}caption{text-align:left;margin:.5em 0}"
           "</style></head><body><h1>sluice</h1><p>version " +
           escape_html(s.version) + " &middot; generation " + std::to_string(s.generation) +
           " &middot; " + std::to_string(s.workers) + " workers &middot; " +
           std::to_string(s.connections) + " connections &middot; " +
           std::to_string(s.rejected_no_target) +
           " answered 503</p>"
           "<table><caption>Targets (refreshes every 2 s)</caption>" +
           html_heading() + rows + "</table></body></html>\n";
}

}  // namespace sluice::admin
