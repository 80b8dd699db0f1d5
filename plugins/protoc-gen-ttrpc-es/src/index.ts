export { protocGenTtrpcEs } from "./protoc-gen-ttrpc-es.js";
export { parseOptions, type Options } from "./options.js";
export { loadTemplates, builtinTemplateDirs, TemplateError, type Templates } from "./templates.js";
export { serviceNames, ttrpcServiceName, type ServiceNames } from "./names.js";
