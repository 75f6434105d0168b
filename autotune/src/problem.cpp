#include "amq/autotune/problem.h"

#include "amq/spec.h"

namespace amq::tune {

namespace {

bool is_cell(const std::string &pipeline) {
    return pipeline == "lstm_cell" || pipeline == "gru_cell";
}

}  // namespace

std::string Problem::shape_str() const {
    const std::string r = std::to_string(rows), c = std::to_string(cols), b = std::to_string(batch);
    if (pipeline == "bgemm") return r + "x" + c + "x" + b;
    if (is_cell(pipeline)) return r + "x" + b;
    if (pipeline == "quantize_act" || pipeline == "log_softmax") return c;
    return r + "x" + c;
}

std::string Problem::bits_str() const {
    if (pipeline == "quantize_act") return "a" + std::to_string(k_a) + "t" + std::to_string(iters);
    if (k_w == 0 && k_a == 0) return "f32";
    return spec::bits_name(k_w, k_a);
}

std::string Problem::str() const {
    std::string s = pipeline + " " + shape_str() + " " + bits_str();
    if (!layout.empty()) s += " " + layout + "/" + std::to_string(tile);
    return s + " " + std::to_string(threads) + " thread(s)";
}

double Problem::work() const {
    const double r = double(rows), c = double(cols), b = double(batch);
    if (pipeline == "bgemm") return r * c * k_w * k_a * b;
    if (pipeline == "f32_gemv") return r * c;
    if (is_cell(pipeline)) return r * b;
    if (pipeline == "quantize_act") return c * k_a * (iters + 1);
    if (pipeline == "log_softmax") return c;
    return r * c * k_w * k_a;
}

bool Problem::operator==(const Problem &o) const {
    return pipeline == o.pipeline && rows == o.rows && cols == o.cols && batch == o.batch &&
           k_w == o.k_w && k_a == o.k_a && iters == o.iters && layout == o.layout &&
           tile == o.tile && threads == o.threads;
}

nlohmann::ordered_json problem_fields(const Problem &p) {
    nlohmann::ordered_json j;
    j["pipeline"] = p.pipeline;
    j["shape"] = p.shape_str();
    j["rows"] = p.rows;
    j["cols"] = p.cols;
    j["bits"] = p.bits_str();
    j["k_w"] = p.k_w;
    j["k_a"] = p.k_a;
    j["threads"] = p.threads;
    j["batch"] = p.batch;
    j["iters"] = p.iters;
    if (p.layout.empty())
        j["weight_layout"] = nullptr;
    else
        j["weight_layout"] = {{"layout", p.layout}, {"tile", p.tile}};
    return j;
}

Problem problem_from_fields(const nlohmann::json &j) {
    Problem p;
    p.pipeline = j.at("pipeline").get<std::string>();
    p.rows = j.at("rows").get<size_t>();
    p.cols = j.at("cols").get<size_t>();
    p.k_w = j.at("k_w").get<int>();
    p.k_a = j.at("k_a").get<int>();
    p.threads = j.at("threads").get<int>();
    if (j.contains("batch")) p.batch = j.at("batch").get<size_t>();
    if (j.contains("iters")) p.iters = j.at("iters").get<int>();
    if (j.contains("weight_layout") && !j.at("weight_layout").is_null()) {
        p.layout = j.at("weight_layout").at("layout").get<std::string>();
        p.tile = j.at("weight_layout").at("tile").get<int>();
    }
    return p;
}

}  // namespace amq::tune
