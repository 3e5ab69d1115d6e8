// ONNX Runtime through its C API (the API the guide's Go server calls): a session with the
// workbench's thread and optimisation settings, numpy-named tensors in and out.
#pragma once

#include <onnxruntime_c_api.h>

#include <memory>
#include <string>
#include <vector>

#include "wb_common.h"

namespace wb {

struct Spec {
  std::string name, dtype;
  std::vector<int64_t> shape;        // -1 where dynamic
  std::vector<std::string> symbols;  // the symbolic name of each dynamic axis, or ""
};

inline const char* numpy_name(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return "uint8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return "int8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16: return "uint16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16: return "int16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return "int32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return "int64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return "bool";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return "float16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return "float64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32: return "uint32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64: return "uint64";
    default: return "";
  }
}

inline ONNXTensorElementDataType onnx_type(const std::string& dtype) {
  static const char* names[] = {"float32", "uint8", "int8", "uint16", "int16", "int32", "int64",
                                "bool", "float16", "float64", "uint32", "uint64"};
  static const ONNXTensorElementDataType types[] = {
      ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8,
      ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16,
      ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32,
      ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL,
      ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE,
      ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i)
    if (dtype == names[i]) return types[i];
  throw std::runtime_error("unsupported dtype " + dtype);
}

inline size_t itemsize(const std::string& dtype) {
  if (dtype == "float64" || dtype == "int64" || dtype == "uint64") return 8;
  if (dtype == "float32" || dtype == "int32" || dtype == "uint32") return 4;
  if (dtype == "float16" || dtype == "int16" || dtype == "uint16") return 2;
  if (dtype == "uint8" || dtype == "int8" || dtype == "bool") return 1;
  throw std::runtime_error("unsupported dtype " + dtype);
}

class OrtModel {
 public:
  struct Options {
    int intra = 0, inter = 0;  // 0: ORT's default
    std::string opt_level = "all";
    int spinning = -1;  // -1: ORT's default
  };

  OrtModel(const std::string& path, const Options& options) {
    api_ = OrtGetApiBase()->GetApi(ORT_API_VERSION);
    if (!api_) throw std::runtime_error("this libonnxruntime does not offer C API version " + std::to_string(ORT_API_VERSION));
    check(api_->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "workbench", &env_));
    OrtSessionOptions* so = nullptr;
    check(api_->CreateSessionOptions(&so));
    std::unique_ptr<OrtSessionOptions, void (*)(OrtSessionOptions*)> guard(so, release_options);
    if (options.intra > 0) check(api_->SetIntraOpNumThreads(so, options.intra));
    if (options.inter > 0) check(api_->SetInterOpNumThreads(so, options.inter));
    GraphOptimizationLevel level = ORT_ENABLE_ALL;
    if (options.opt_level == "disable") level = ORT_DISABLE_ALL;
    else if (options.opt_level == "basic") level = ORT_ENABLE_BASIC;
    else if (options.opt_level == "extended") level = ORT_ENABLE_EXTENDED;
    check(api_->SetSessionGraphOptimizationLevel(so, level));
    if (options.spinning >= 0)
      check(api_->AddSessionConfigEntry(so, "session.intra_op.allow_spinning", options.spinning ? "1" : "0"));
    check(api_->CreateSession(env_, path.c_str(), so, &session_));
    check(api_->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory_));
    check(api_->GetAllocatorWithDefaultOptions(&allocator_));
    inputs_ = specs(true);
    outputs_ = specs(false);
    for (auto& s : inputs_) input_names_.push_back(s.name.c_str());
    for (auto& s : outputs_) output_names_.push_back(s.name.c_str());
  }

  ~OrtModel() {
    if (memory_) api_->ReleaseMemoryInfo(memory_);
    if (session_) api_->ReleaseSession(session_);
    if (env_) api_->ReleaseEnv(env_);
  }

  const std::vector<Spec>& inputs() const { return inputs_; }
  const std::vector<Spec>& outputs() const { return outputs_; }

  // An OrtValue over `t`'s bytes (no copy): `t` must outlive it.
  OrtValue* wrap(HostTensor& t) const {
    size_t count = 1;
    for (auto d : t.shape) {
      if (d < 0) throw std::runtime_error("negative dimension in input " + t.name);
      count *= static_cast<size_t>(d);
    }
    if (count * itemsize(t.dtype) != t.data.size())
      throw std::runtime_error("input " + t.name + " has " + std::to_string(t.data.size()) +
                               " bytes, its shape and dtype need " + std::to_string(count * itemsize(t.dtype)));
    OrtValue* value = nullptr;
    check(api_->CreateTensorWithDataAsOrtValue(memory_, t.data.data(), t.data.size(), t.shape.data(),
                                               t.shape.size(), onnx_type(t.dtype), &value));
    return value;
  }

  // The feed in the model's input order, each checked for name and dtype.
  std::vector<HostTensor*> ordered(std::vector<HostTensor>& feed) const {
    std::vector<HostTensor*> out;
    for (const auto& spec : inputs_) {
      HostTensor* found = nullptr;
      for (auto& t : feed)
        if (t.name == spec.name) found = &t;
      if (!found) throw std::runtime_error("feed has no input '" + spec.name + "'");
      if (found->dtype != spec.dtype)
        throw std::runtime_error("input '" + spec.name + "' was given dtype " + found->dtype +
                                 " but the model expects " + spec.dtype);
      if (found->shape.size() != spec.shape.size())
        throw std::runtime_error("input '" + spec.name + "' has " + std::to_string(found->shape.size()) +
                                 " axes, the model expects " + std::to_string(spec.shape.size()));
      out.push_back(found);
    }
    return out;
  }

  // One inference; the caller releases the returned values (see release).
  std::vector<OrtValue*> run(const std::vector<OrtValue*>& values) const {
    std::vector<OrtValue*> outs(output_names_.size(), nullptr);
    check(api_->Run(session_, nullptr, input_names_.data(), values.data(), values.size(),
                    output_names_.data(), output_names_.size(), outs.data()));
    return outs;
  }

  void release(std::vector<OrtValue*>& values) const {
    for (auto* v : values)
      if (v) api_->ReleaseValue(v);
    values.clear();
  }

  HostTensor to_host(const std::string& name, const OrtValue* value) const {
    OrtTensorTypeAndShapeInfo* info = nullptr;
    check(api_->GetTensorTypeAndShape(value, &info));
    ONNXTensorElementDataType type;
    size_t ndim = 0, count = 0;
    check(api_->GetTensorElementType(info, &type));
    check(api_->GetDimensionsCount(info, &ndim));
    HostTensor t;
    t.name = name;
    t.dtype = numpy_name(type);
    t.shape.resize(ndim);
    check(api_->GetDimensions(info, t.shape.data(), ndim));
    check(api_->GetTensorShapeElementCount(info, &count));
    api_->ReleaseTensorTypeAndShapeInfo(info);
    if (t.dtype.empty()) throw std::runtime_error("output " + name + " has a type this caller cannot return");
    void* data = nullptr;
    check(api_->GetTensorMutableData(const_cast<OrtValue*>(value), &data));
    t.data.assign(static_cast<char*>(data), static_cast<char*>(data) + count * itemsize(t.dtype));
    return t;
  }

  void check(OrtStatus* status) const {
    if (!status) return;
    std::string message = api_->GetErrorMessage(status);
    api_->ReleaseStatus(status);
    throw std::runtime_error(message);
  }

 private:
  static void release_options(OrtSessionOptions* so) {
    OrtGetApiBase()->GetApi(ORT_API_VERSION)->ReleaseSessionOptions(so);
  }

  std::vector<Spec> specs(bool inputs) const {
    size_t n = 0;
    check(inputs ? api_->SessionGetInputCount(session_, &n) : api_->SessionGetOutputCount(session_, &n));
    std::vector<Spec> out;
    for (size_t i = 0; i < n; ++i) {
      Spec spec;
      char* name = nullptr;
      check(inputs ? api_->SessionGetInputName(session_, i, allocator_, &name)
                   : api_->SessionGetOutputName(session_, i, allocator_, &name));
      spec.name = name;
      check(api_->AllocatorFree(allocator_, name));
      OrtTypeInfo* type_info = nullptr;
      check(inputs ? api_->SessionGetInputTypeInfo(session_, i, &type_info)
                   : api_->SessionGetOutputTypeInfo(session_, i, &type_info));
      const OrtTensorTypeAndShapeInfo* info = nullptr;
      check(api_->CastTypeInfoToTensorInfo(type_info, &info));
      if (info) {
        ONNXTensorElementDataType type;
        size_t ndim = 0;
        check(api_->GetTensorElementType(info, &type));
        check(api_->GetDimensionsCount(info, &ndim));
        spec.dtype = numpy_name(type);
        spec.shape.resize(ndim);
        check(api_->GetDimensions(info, spec.shape.data(), ndim));
        std::vector<const char*> symbols(ndim, nullptr);
        check(api_->GetSymbolicDimensions(info, symbols.data(), ndim));
        for (auto* s : symbols) spec.symbols.push_back(s ? s : "");
      }
      api_->ReleaseTypeInfo(type_info);
      if (spec.dtype.empty()) spec.dtype = "unsupported";
      out.push_back(spec);
    }
    return out;
  }

  const OrtApi* api_ = nullptr;
  OrtEnv* env_ = nullptr;
  OrtSession* session_ = nullptr;
  OrtMemoryInfo* memory_ = nullptr;
  OrtAllocator* allocator_ = nullptr;
  std::vector<Spec> inputs_, outputs_;
  std::vector<const char*> input_names_, output_names_;
};

}  // namespace wb
