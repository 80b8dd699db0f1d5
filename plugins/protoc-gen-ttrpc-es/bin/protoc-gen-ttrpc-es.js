#!/usr/bin/env node
import { runNodeJs } from "@bufbuild/protoplugin";
import { protocGenTtrpcEs } from "../dist/protoc-gen-ttrpc-es.js";

runNodeJs(protocGenTtrpcEs);
