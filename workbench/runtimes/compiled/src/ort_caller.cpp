// The `onnxruntime-c` runtime's process: loads one ONNX file through ONNX Runtime's C API,
// prints its signature, then answers `run` and `bench` commands (see wb_common.h).
// Usage: ort_caller MODEL.onnx INTRA INTER OPT_LEVEL SPINNING
#include <cstdlib>

#include "wb_common.h"
#include "wb_ort.h"

namespace {

void print_specs(const char* kind, const std::vector<wb::Spec>& specs) {
  for (const auto& s : specs) {
    std::cout << kind << "\t" << s.name << "\t" << s.dtype << "\t";
    for (size_t i = 0; i < s.shape.size(); ++i) {
      if (i) std::cout << ",";
      if (s.shape[i] >= 0) std::cout << s.shape[i];
      else std::cout << "?" << s.symbols[i];
    }
    std::cout << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::cout << "error\tusage: ort_caller MODEL INTRA INTER OPT_LEVEL SPINNING" << std::endl;
    return 2;
  }
  std::unique_ptr<wb::OrtModel> model;
  try {
    wb::OrtModel::Options options;
    options.intra = std::atoi(argv[2]);
    options.inter = std::atoi(argv[3]);
    options.opt_level = argv[4];
    options.spinning = std::atoi(argv[5]);
    model = std::make_unique<wb::OrtModel>(argv[1], options);
  } catch (const std::exception& exc) {
    std::cout << "error\t" << wb::one_line(exc.what()) << std::endl;
    return 1;
  }
  print_specs("input", model->inputs());
  print_specs("output", model->outputs());
  std::cout << "ready" << std::endl;

  // The pool: host tensors and the OrtValues over them, made before timing.
  std::vector<std::vector<wb::HostTensor>> pool;
  std::vector<std::vector<OrtValue*>> values;
  auto clear_pool = [&]() {
    for (auto& v : values) model->release(v);
    values.clear();
    pool.clear();
  };
  wb::Caller caller;
  caller.load_pool = [&](const std::vector<std::string>& paths) {
    clear_pool();
    for (const auto& p : paths) pool.push_back(wb::read_tensors(p));
    for (auto& feed : pool) {
      std::vector<OrtValue*> v;
      for (auto* t : model->ordered(feed)) v.push_back(model->wrap(*t));
      values.push_back(v);
    }
    return pool.size();
  };
  caller.run_pool = [&](size_t i) {
    auto outs = model->run(values[i]);
    model->release(outs);
  };
  caller.run_file = [&](const std::string& in, const std::string& out) {
    auto feed = wb::read_tensors(in);
    std::vector<OrtValue*> v;
    for (auto* t : model->ordered(feed)) v.push_back(model->wrap(*t));
    std::vector<OrtValue*> outs;
    try {
      outs = model->run(v);
    } catch (...) {
      model->release(v);
      throw;
    }
    std::vector<wb::HostTensor> host;
    for (size_t i = 0; i < outs.size(); ++i) host.push_back(model->to_host(model->outputs()[i].name, outs[i]));
    model->release(outs);
    model->release(v);
    wb::write_tensors(out, host);
  };
  int rc = wb::serve_commands(caller);
  clear_pool();
  return rc;
}
