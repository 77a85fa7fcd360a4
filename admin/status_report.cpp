#include "admin/status_report.hpp"

#include <algorithm>
#include <cstdio>

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

std::string escape_json(const std::string& text) {
    std::string out;
    for (unsigned char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            char code[8];
            std::snprintf(code, sizeof code, "\\u%04x", c);
            out += code;
        } else {
            out += static_cast<char>(c);
        }
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

StatusSnapshot take_snapshot(const Config& config, const SharedTable& table) {
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
            st.active = slot.active.load();
            st.connections = slot.connections.load();
            st.connect_failures = slot.passive_failures.load();
            st.bytes_to_target = slot.bytes_to_target.load();
            st.bytes_to_client = slot.bytes_to_client.load();
            s.addresses.push_back(std::move(st));
        }
    }
    return s;
}

std::string render_prometheus(const StatusSnapshot& s) {
    std::string out;
    auto family = [&](const char* name, const char* type, const char* help) {
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    };
    auto per_address = [&](const char* name, const char* type, const char* help, auto value_of) {
        family(name, type, help);
        for (const AddressStatus& a : s.addresses) {
            out += std::string(name) + "{target=\"" + escape_label(a.target) + "\",address=\"" +
                   escape_label(a.address) + "\"} " + value_of(a) + "\n";
        }
    };
    per_address("sluice_target_up", "gauge", "1 if the address is healthy, else 0.",
                [](const AddressStatus& a) { return std::string(a.up ? "1" : "0"); });
    per_address("sluice_target_active_connections", "gauge", "Connections open to the address.",
                [](const AddressStatus& a) { return std::to_string(a.active); });
    per_address("sluice_target_connections_total", "counter", "Connections made to the address.",
                [](const AddressStatus& a) { return std::to_string(a.connections); });
    per_address("sluice_target_connect_failures_total", "counter",
                "Connects to the address that failed (refused, unreachable, timeout).",
                [](const AddressStatus& a) { return std::to_string(a.connect_failures); });
    family("sluice_target_bytes_total", "counter", "Bytes relayed, by direction.");
    for (const AddressStatus& a : s.addresses) {
        const std::string labels =
            "target=\"" + escape_label(a.target) + "\",address=\"" + escape_label(a.address) + "\"";
        out += "sluice_target_bytes_total{" + labels + ",direction=\"to_target\"} " +
               std::to_string(a.bytes_to_target) + "\n";
        out += "sluice_target_bytes_total{" + labels + ",direction=\"to_client\"} " +
               std::to_string(a.bytes_to_client) + "\n";
    }
    per_address("sluice_health_check_duration_seconds", "gauge",
                "How long the last health check of the address took.",
                [](const AddressStatus& a) { return number(a.check_seconds); });
    family("sluice_target_last_failure_info", "gauge",
           "Why the address is, or last was, DOWN (value always 1).");
    for (const AddressStatus& a : s.addresses) {
        if (a.reason.empty()) continue;
        out += "sluice_target_last_failure_info{target=\"" + escape_label(a.target) +
               "\",address=\"" + escape_label(a.address) + "\",reason=\"" + escape_label(a.reason) +
               "\"} 1\n";
    }
    family("sluice_connections_total", "counter", "Client connections accepted.");
    out += "sluice_connections_total " + std::to_string(s.connections) + "\n";
    family("sluice_rejected_total", "counter", "Client connections turned away, by reason.");
    out += "sluice_rejected_total{reason=\"no_target\"} " + std::to_string(s.rejected_no_target) +
           "\n";
    out += "sluice_rejected_total{reason=\"limit\"} " + std::to_string(s.rejected_limit) + "\n";
    family("sluice_workers", "gauge", "Worker processes of the serving generation.");
    out += "sluice_workers " + std::to_string(s.workers) + "\n";
    family("sluice_reloads_total", "counter", "Successful configuration reloads.");
    out += "sluice_reloads_total " + std::to_string(s.reloads) + "\n";
    family("sluice_config_generation", "gauge", "Generation number of the serving config.");
    out += "sluice_config_generation " + std::to_string(s.generation) + "\n";
    family("sluice_build_info", "gauge", "The running version (value always 1).");
    out += "sluice_build_info{version=\"" + escape_label(s.version) + "\"} 1\n";
    return out;
}

std::string render_json(const StatusSnapshot& s) {
    std::string out = "{\"version\":\"" + escape_json(s.version) +
                      "\",\"generation\":" + std::to_string(s.generation) +
                      ",\"reloads\":" + std::to_string(s.reloads) +
                      ",\"workers\":" + std::to_string(s.workers) +
                      ",\"connections\":" + std::to_string(s.connections) +
                      ",\"rejected\":{\"no_target\":" + std::to_string(s.rejected_no_target) +
                      ",\"limit\":" + std::to_string(s.rejected_limit) + "},\"targets\":[";
    for (size_t i = 0; i < s.addresses.size(); ++i) {
        const AddressStatus& a = s.addresses[i];
        out += std::string(i ? "," : "") + "{\"target\":\"" + escape_json(a.target) +
               "\",\"address\":\"" + escape_json(a.address) + "\",\"state\":\"" +
               (a.up ? "UP" : "DOWN") + "\",\"draining\":" + (a.draining ? "true" : "false") +
               ",\"reason\":\"" + escape_json(a.reason) +
               "\",\"last_status\":" + std::to_string(a.last_status) +
               ",\"check_seconds\":" + number(a.check_seconds) +
               ",\"active_connections\":" + std::to_string(a.active) +
               ",\"connections\":" + std::to_string(a.connections) +
               ",\"connect_failures\":" + std::to_string(a.connect_failures) +
               ",\"bytes_to_target\":" + std::to_string(a.bytes_to_target) +
               ",\"bytes_to_client\":" + std::to_string(a.bytes_to_client) + "}";
    }
    return out + "]}\n";
}

std::string render_html(const StatusSnapshot& s) {
    std::string rows;
    for (const AddressStatus& a : s.addresses) {
        rows += std::string("<tr class=\"") + (a.up ? "up" : "down") + "\"><td>" +
                escape_html(a.target) + "</td><td>" + escape_html(a.address) +
                "</td><td class=\"state\">" + (a.up ? "UP" : "DOWN") +
                (a.draining ? " (draining)" : "") + "</td><td>" + escape_html(a.reason) +
                "</td><td>" + std::to_string(a.active) + "</td><td>" +
                std::to_string(a.connections) + "</td><td>" + std::to_string(a.connect_failures) +
                "</td><td>" + std::to_string(a.bytes_to_target) + "</td><td>" +
                std::to_string(a.bytes_to_client) + "</td><td>" +
                (a.last_status ? std::to_string(a.last_status) : std::string("-")) + " in " +
                milliseconds(a.check_seconds) + " ms</td></tr>\n";
    }
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
           "<table><caption>Targets (refreshes every 2 s)</caption><tr><th>target</th>"
           "<th>address</th><th>state</th><th>last failure</th><th>active</th>"
           "<th>connections</th><th>connect failures</th><th>bytes to target</th>"
           "<th>bytes to client</th><th>last check</th></tr>\n" +
           rows + "</table></body></html>\n";
}

}  // namespace sluice::admin
