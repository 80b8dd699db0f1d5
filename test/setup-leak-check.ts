// Every unit test file ends with no timer left running and no socket or
// server left open: checked, not hoped (see leak-check.ts).
import { checkLeaksAfterAll } from "./leak-check.js";

checkLeaksAfterAll();
