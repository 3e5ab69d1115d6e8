// The compiled KServe v2 HTTP front: one ONNX model through ONNX Runtime's C API, plain
// POSIX sockets, a thread per connection (HTTP/1.1 keep-alive), no batcher: each request
// is one session Run, as the guide's Go server does. Endpoints:
//   GET  /v2, /v2/health/live, /v2/health/ready, /v2/models/NAME, /v2/models/NAME/ready
//   POST /v2/models/NAME/infer    JSON tensors, or the binary tensor extension
//        (Inference-Header-Content-Length; binary_data_size per input; binary_data /
//        binary_data_output for outputs).
// Errors are {"error": "..."} with a 4xx status (5xx only for a failed Run); a bad request
// never ends the process. It listens on 127.0.0.1 only and prints one JSON line
// {"http_port": N, "pid": P} once listening.
// Usage: ort_server MODEL.onnx NAME PORT INTRA INTER MAX_BODY_MB
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>

#include "wb_common.h"
#include "wb_ort.h"

using nlohmann::json;

namespace {

struct HttpError : std::runtime_error {
  int status;
  HttpError(int s, const std::string& m) : std::runtime_error(m), status(s) {}
};

struct Request {
  std::string method, path;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::map<std::string, std::string> headers;
};

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    default: return "Error";
  }
}

const std::map<std::string, std::string>& v2_types() {
  static const std::map<std::string, std::string> types = {
      {"float32", "FP32"}, {"float64", "FP64"}, {"float16", "FP16"}, {"int64", "INT64"},
      {"int32", "INT32"},  {"int16", "INT16"},  {"int8", "INT8"},    {"uint8", "UINT8"},
      {"uint16", "UINT16"}, {"uint32", "UINT32"}, {"uint64", "UINT64"}, {"bool", "BOOL"}};
  return types;
}

std::string numpy_of(const std::string& v2) {
  for (const auto& kv : v2_types())
    if (kv.second == v2) return kv.first;
  throw HttpError(400, "unsupported datatype '" + v2 + "'");
}

class Server {
 public:
  Server(wb::OrtModel& model, std::string name, size_t max_body)
      : model_(model), name_(std::move(name)), max_body_(max_body) {}

  void handle(int fd) {
    std::string buffer;
    while (true) {
      Request request;
      Response response;
      bool keep_alive = true;
      try {
        if (!read_request(fd, buffer, request)) break;
        auto connection = request.headers.find("connection");
        keep_alive = connection == request.headers.end() || connection->second != "close";
        response = route(request);
      } catch (const HttpError& exc) {
        response = error(exc.status, exc.what());
        if (exc.status == 413 || exc.status == 431 || exc.status == 411) keep_alive = false;
      } catch (const std::exception& exc) {
        response = error(400, exc.what());
        keep_alive = false;
      }
      if (!write_response(fd, response, keep_alive) || !keep_alive) break;
    }
    close(fd);
  }

 private:
  static Response error(int status, const std::string& message) {
    Response r;
    r.status = status;
    r.body = json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace);
    return r;
  }

  // One request from the connection; false on a clean close before any byte.
  bool read_request(int fd, std::string& buffer, Request& request) {
    size_t end;
    while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
      if (buffer.size() > 65536) throw HttpError(431, "request headers exceed 64 KiB");
      char chunk[65536];
      ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
      if (n <= 0) {
        if (buffer.empty()) return false;
        throw std::runtime_error("connection closed mid-request");
      }
      buffer.append(chunk, static_cast<size_t>(n));
    }
    std::string head = buffer.substr(0, end);
    buffer.erase(0, end + 4);
    std::istringstream lines(head);
    std::string line, version;
    std::getline(lines, line);
    std::istringstream first(line);
    first >> request.method >> request.path >> version;
    if (request.method.empty() || request.path.empty()) throw HttpError(400, "malformed request line");
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string key = line.substr(0, colon);
      for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t start = line.find_first_not_of(' ', colon + 1);
      request.headers[key] = start == std::string::npos ? "" : line.substr(start);
    }
    if (request.headers.count("transfer-encoding"))
      throw HttpError(411, "chunked bodies are not supported: send Content-Length");
    size_t length = 0;
    auto it = request.headers.find("content-length");
    if (it != request.headers.end()) {
      try {
        length = std::stoull(it->second);
      } catch (...) {
        throw HttpError(400, "bad Content-Length");
      }
    }
    if (length > max_body_) throw HttpError(413, "request body over the " + std::to_string(max_body_) + " byte limit");
    while (buffer.size() < length) {
      char chunk[65536];
      ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
      if (n <= 0) throw std::runtime_error("connection closed mid-body");
      buffer.append(chunk, static_cast<size_t>(n));
    }
    request.body = buffer.substr(0, length);
    buffer.erase(0, length);
    return true;
  }

  static bool write_all(int fd, const char* data, size_t size) {
    while (size > 0) {
      ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
      if (n <= 0) return false;
      data += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }

  static bool write_response(int fd, const Response& r, bool keep_alive) {
    std::string head = "HTTP/1.1 " + std::to_string(r.status) + " " + reason_phrase(r.status) +
                       "\r\nContent-Type: " + r.content_type +
                       "\r\nContent-Length: " + std::to_string(r.body.size()) +
                       (keep_alive ? "\r\nConnection: keep-alive" : "\r\nConnection: close");
    for (const auto& kv : r.headers) head += "\r\n" + kv.first + ": " + kv.second;
    head += "\r\n\r\n";
    return write_all(fd, head.data(), head.size()) && write_all(fd, r.body.data(), r.body.size());
  }

  Response ok(const json& body) {
    Response r;
    r.body = body.dump();
    return r;
  }

  Response route(const Request& request) {
    std::string path = request.path.substr(0, request.path.find('?'));
    const std::string model_prefix = "/v2/models/" + name_;
    bool get = request.method == "GET";
    if (path == "/v2/health/live" && get) return ok({{"live", true}});
    if (path == "/v2/health/ready" && get) return ok({{"ready", true}});
    if (path == "/v2" && get)
      return ok({{"name", "workbench-compiled"}, {"version", "1"}, {"extensions", {"binary_tensor_data"}}});
    if (path == model_prefix || path == model_prefix + "/versions/1") {
      if (!get) throw HttpError(405, "use GET for model metadata");
      return ok(metadata());
    }
    if (path == model_prefix + "/ready" && get) return ok({{"name", name_}, {"ready", true}});
    if (path == model_prefix + "/infer" || path == model_prefix + "/versions/1/infer") {
      if (request.method != "POST") throw HttpError(405, "use POST for inference");
      return infer(request);
    }
    if (path.rfind("/v2/models/", 0) == 0) throw HttpError(404, "unknown model or path: " + path + " (this server has '" + name_ + "')");
    throw HttpError(404, "unknown path: " + path);
  }

  static json specs(const std::vector<wb::Spec>& specs) {
    json out = json::array();
    for (const auto& s : specs) {
      auto type = v2_types().find(s.dtype);
      out.push_back({{"name", s.name}, {"datatype", type == v2_types().end() ? s.dtype : type->second}, {"shape", s.shape}});
    }
    return out;
  }

  json metadata() {
    return {{"name", name_}, {"versions", {"1"}}, {"platform", "onnxruntime_onnx"},
            {"inputs", specs(model_.inputs())}, {"outputs", specs(model_.outputs())}};
  }

  // Flatten nested JSON data into `t`'s bytes, converting to its dtype.
  template <typename T>
  static void fill(const json& data, std::vector<char>& bytes) {
    if (data.is_array()) {
      for (const auto& item : data) fill<T>(item, bytes);
      return;
    }
    T value;
    if (data.is_boolean()) value = static_cast<T>(data.get<bool>());
    else if (data.is_number()) value = data.get<T>();
    else throw HttpError(400, "tensor data must be numbers or booleans");
    const char* raw = reinterpret_cast<const char*>(&value);
    bytes.insert(bytes.end(), raw, raw + sizeof(T));
  }

  static void from_json(const json& data, wb::HostTensor& t) {
    const std::string& d = t.dtype;
    if (d == "float32") fill<float>(data, t.data);
    else if (d == "float64") fill<double>(data, t.data);
    else if (d == "int64") fill<int64_t>(data, t.data);
    else if (d == "int32") fill<int32_t>(data, t.data);
    else if (d == "int16") fill<int16_t>(data, t.data);
    else if (d == "int8") fill<int8_t>(data, t.data);
    else if (d == "uint8") fill<uint8_t>(data, t.data);
    else if (d == "uint16") fill<uint16_t>(data, t.data);
    else if (d == "uint32") fill<uint32_t>(data, t.data);
    else if (d == "uint64") fill<uint64_t>(data, t.data);
    else if (d == "bool") fill<bool>(data, t.data);
    else throw HttpError(400, "datatype " + d + " cannot be sent as JSON data: use the binary extension");
  }

  template <typename T>
  static json to_list(const wb::HostTensor& t) {
    json out = json::array();
    const T* values = reinterpret_cast<const T*>(t.data.data());
    for (size_t i = 0; i < t.data.size() / sizeof(T); ++i) out.push_back(values[i]);
    return out;
  }

  static json as_json(const wb::HostTensor& t) {
    const std::string& d = t.dtype;
    if (d == "float32") return to_list<float>(t);
    if (d == "float64") return to_list<double>(t);
    if (d == "int64") return to_list<int64_t>(t);
    if (d == "int32") return to_list<int32_t>(t);
    if (d == "int16") return to_list<int16_t>(t);
    if (d == "int8") return to_list<int8_t>(t);
    if (d == "uint8") return to_list<uint8_t>(t);
    if (d == "bool") return to_list<bool>(t);
    throw HttpError(400, "output datatype " + d + " needs the binary extension");
  }

  Response infer(const Request& request) {
    size_t header_length = request.body.size();
    auto it = request.headers.find("inference-header-content-length");
    if (it != request.headers.end()) {
      try {
        header_length = std::stoull(it->second);
      } catch (...) {
        throw HttpError(400, "bad Inference-Header-Content-Length");
      }
      if (header_length > request.body.size())
        throw HttpError(400, "Inference-Header-Content-Length exceeds the body");
    }
    json head = json::parse(request.body.begin(), request.body.begin() + static_cast<long>(header_length), nullptr, false);
    if (head.is_discarded() || !head.is_object()) throw HttpError(400, "the request is not a JSON object");
    if (!head.contains("inputs") || !head["inputs"].is_array()) throw HttpError(400, "the request has no 'inputs' list");
    size_t offset = header_length;
    std::vector<wb::HostTensor> feed;
    for (const auto& input : head["inputs"]) {
      if (!input.is_object() || !input.contains("name") || !input["name"].is_string())
        throw HttpError(400, "every input needs a 'name'");
      wb::HostTensor t;
      t.name = input["name"].get<std::string>();
      if (!input.contains("datatype") || !input["datatype"].is_string())
        throw HttpError(400, "input '" + t.name + "' needs a 'datatype'");
      t.dtype = numpy_of(input["datatype"].get<std::string>());
      if (!input.contains("shape") || !input["shape"].is_array())
        throw HttpError(400, "input '" + t.name + "' needs a 'shape' list");
      size_t count = 1;
      for (const auto& d : input["shape"]) {
        if (!d.is_number_integer() || d.get<int64_t>() < 0) throw HttpError(400, "input '" + t.name + "' has a bad shape");
        t.shape.push_back(d.get<int64_t>());
        count *= static_cast<size_t>(t.shape.back());
        if (count > max_body_) throw HttpError(400, "input '" + t.name + "' is too large");
      }
      const json* params = input.contains("parameters") && input["parameters"].is_object() ? &input["parameters"] : nullptr;
      if (params && params->contains("binary_data_size")) {
        const json& size = (*params)["binary_data_size"];
        if (!size.is_number_unsigned()) throw HttpError(400, "binary_data_size must be a non-negative integer");
        size_t n = size.get<size_t>();
        if (offset + n > request.body.size()) throw HttpError(400, "binary data of input '" + t.name + "' runs past the body");
        t.data.assign(request.body.begin() + static_cast<long>(offset), request.body.begin() + static_cast<long>(offset + n));
        offset += n;
      } else {
        if (!input.contains("data")) throw HttpError(400, "input '" + t.name + "' has no 'data' and no binary_data_size");
        from_json(input["data"], t);
      }
      if (t.data.size() != count * wb::itemsize(t.dtype))
        throw HttpError(400, "input '" + t.name + "' has " + std::to_string(t.data.size()) + " bytes of data; shape and datatype need " +
                                 std::to_string(count * wb::itemsize(t.dtype)));
      feed.push_back(std::move(t));
    }
    if (feed.size() != model_.inputs().size())
      throw HttpError(400, "the model takes " + std::to_string(model_.inputs().size()) + " inputs, the request gave " + std::to_string(feed.size()));
    std::vector<OrtValue*> values;
    std::vector<OrtValue*> outs;
    std::vector<wb::HostTensor> results;
    try {
      for (auto* t : model_.ordered(feed)) values.push_back(model_.wrap(*t));
    } catch (const std::exception& exc) {
      model_.release(values);
      throw HttpError(400, exc.what());
    }
    try {
      outs = model_.run(values);
      for (size_t i = 0; i < outs.size(); ++i) results.push_back(model_.to_host(model_.outputs()[i].name, outs[i]));
    } catch (const std::exception& exc) {
      model_.release(values);
      model_.release(outs);
      throw HttpError(400, std::string("inference failed: ") + exc.what());
    }
    model_.release(values);
    model_.release(outs);
    return reply(head, results);
  }

  Response reply(const json& head, const std::vector<wb::HostTensor>& results) {
    bool all_binary = false;
    if (head.contains("parameters") && head["parameters"].is_object()) {
      const auto& p = head["parameters"];
      all_binary = p.contains("binary_data_output") && p["binary_data_output"].is_boolean() && p["binary_data_output"].get<bool>();
    }
    std::map<std::string, bool> wanted;  // requested outputs -> binary
    if (head.contains("outputs") && head["outputs"].is_array()) {
      for (const auto& o : head["outputs"]) {
        if (!o.is_object() || !o.contains("name") || !o["name"].is_string()) throw HttpError(400, "every requested output needs a 'name'");
        bool binary = all_binary;
        if (o.contains("parameters") && o["parameters"].is_object() && o["parameters"].contains("binary_data"))
          binary = o["parameters"]["binary_data"].is_boolean() && o["parameters"]["binary_data"].get<bool>();
        wanted[o["name"].get<std::string>()] = binary;
      }
      for (const auto& kv : wanted) {
        bool known = false;
        for (const auto& r : results) known = known || r.name == kv.first;
        if (!known) throw HttpError(400, "unknown output '" + kv.first + "'");
      }
    }
    json outputs = json::array();
    std::string binary;
    for (const auto& t : results) {
      bool send = wanted.empty() || wanted.count(t.name);
      if (!send) continue;
      bool as_binary = wanted.empty() ? all_binary : wanted[t.name];
      auto type = v2_types().find(t.dtype);
      json out = {{"name", t.name}, {"datatype", type == v2_types().end() ? t.dtype : type->second}, {"shape", t.shape}};
      if (as_binary) {
        out["parameters"] = {{"binary_data_size", t.data.size()}};
        binary.append(t.data.data(), t.data.size());
      } else {
        out["data"] = as_json(t);
      }
      outputs.push_back(out);
    }
    json body = {{"model_name", name_}, {"model_version", "1"}, {"outputs", outputs}};
    if (head.contains("id") && head["id"].is_string()) body["id"] = head["id"];
    Response r;
    r.body = body.dump();
    if (!binary.empty()) {
      r.headers["Inference-Header-Content-Length"] = std::to_string(r.body.size());
      r.content_type = "application/octet-stream";
      r.body += binary;
    }
    return r;
  }

  wb::OrtModel& model_;
  std::string name_;
  size_t max_body_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    std::cerr << "usage: ort_server MODEL NAME PORT INTRA INTER MAX_BODY_MB" << std::endl;
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<wb::OrtModel> model;
  try {
    wb::OrtModel::Options options;
    options.intra = std::atoi(argv[4]);
    options.inter = std::atoi(argv[5]);
    model = std::make_unique<wb::OrtModel>(argv[1], options);
  } catch (const std::exception& exc) {
    std::cerr << "cannot load " << argv[1] << ": " << exc.what() << std::endl;
    return 1;
  }
  size_t max_body = static_cast<size_t>(std::atof(argv[6]) * 1024 * 1024);
  Server server(*model, argv[2], max_body);

  int listener = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // loopback only
  address.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[3])));
  if (bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 || listen(listener, 128) != 0) {
    std::cerr << "cannot listen on 127.0.0.1:" << argv[3] << ": " << std::strerror(errno) << std::endl;
    return 1;
  }
  socklen_t length = sizeof(address);
  getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  std::cout << json{{"http_port", ntohs(address.sin_port)}, {"pid", getpid()}, {"front", "compiled"}}.dump() << std::endl;
  while (true) {
    int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE) continue;
      break;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::thread([&server, fd]() { server.handle(fd); }).detach();
  }
  return 0;
}
