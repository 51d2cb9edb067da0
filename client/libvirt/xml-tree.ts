// An XML document as a tree that remembers what was read from it: the libvirt converter takes
// the elements, attributes and text it carries over, drops (with a reason) what it cannot, and
// whatever is left untouched at the end is reported too. Parsed by @xmldom/xmldom, never by hand.
import { DOMParser } from '@xmldom/xmldom';
import { VirtqError } from '../../protocol/index.js';

/** One thing of the XML that a conversion leaves out: where (`/domain/devices/graphics[0]`, `.../@cache`) and why. */
export interface LeftOut {
  readonly path: string;
  readonly reason: string;
}

/** A left-out item with its place in the document, so a report reads top to bottom. */
export interface PlacedLeftOut extends LeftOut {
  readonly order: number;
}

const ELEMENT_NODE = 1;
const TEXT_NODE = 3;
const CDATA_SECTION_NODE = 4;

// The slice of the DOM the tree is built from (xmldom's types are the DOM's).
interface DomNode {
  readonly nodeType: number;
  readonly nodeName: string;
  readonly nodeValue: string | null;
  readonly childNodes: { readonly length: number; item(i: number): DomNode | null };
  readonly attributes?: { readonly length: number; item(i: number): { name: string; value: string } | null };
}

/** One element, with what has been taken of it. */
export class XmlElement {
  readonly children: XmlElement[] = [];
  private readonly attrs = new Map<string, string>();
  private readonly takenAttrs = new Set<string>();
  private textTaken = false;
  /** The element is accounted for: taken, dropped with a reason, or ignored on purpose. */
  handled = false;

  constructor(readonly name: string, readonly path: string, private readonly rawText: string, /** Position in document order. */ readonly order: number) {}

  /** Reads an attribute and marks it taken. */
  attr(name: string): string | undefined {
    const v = this.attrs.get(name);
    if (v !== undefined) this.takenAttrs.add(name);
    return v;
  }

  /** The element's text (trimmed), marked taken. */
  text(): string {
    this.textTaken = true;
    return this.rawText.trim();
  }

  /** The first child called `name`, or undefined. */
  child(name: string): XmlElement | undefined {
    return this.children.find((c) => c.name === name);
  }

  /** Every child called `name`, in document order. */
  all(name: string): XmlElement[] {
    return this.children.filter((c) => c.name === name);
  }

  /** Marks the element taken (its attributes and children are still checked one by one). */
  take(): this {
    this.handled = true;
    return this;
  }

  /** Marks the element and everything in it accounted for, with nothing to report. */
  ignore(): void {
    this.handled = true;
    this.textTaken = true;
    for (const a of this.attrs.keys()) this.takenAttrs.add(a);
    for (const c of this.children) c.ignore();
  }

  /** Attributes not taken, by name. */
  untakenAttrs(): string[] {
    return [...this.attrs.keys()].filter((a) => !this.takenAttrs.has(a));
  }

  /** True when the element has text that was not taken. */
  untakenText(): boolean {
    return !this.textTaken && this.rawText.trim() !== '';
  }

  /** @internal */
  setAttr(name: string, value: string): void {
    this.attrs.set(name, value);
  }
}

// Children of these paths are always indexed (`devices/disk[0]`), so a device's path does not
// change when another of its kind is added; elsewhere only repeated names are.
const ALWAYS_INDEXED = new Set(['/domain/devices']);

function build(node: DomNode, path: string, counter: { n: number }): XmlElement {
  let text = '';
  const elements: DomNode[] = [];
  for (let i = 0; i < node.childNodes.length; i++) {
    const c = node.childNodes.item(i);
    if (c === null) continue;
    if (c.nodeType === ELEMENT_NODE) elements.push(c);
    else if (c.nodeType === TEXT_NODE || c.nodeType === CDATA_SECTION_NODE) text += c.nodeValue ?? '';
  }
  const el = new XmlElement(node.nodeName, path, text, counter.n++);
  const attrs = node.attributes;
  for (let i = 0; attrs !== undefined && i < attrs.length; i++) {
    const a = attrs.item(i);
    // Namespace declarations are how the document is written, not what it says.
    if (a !== null && a.name !== 'xmlns' && !a.name.startsWith('xmlns:')) el.setAttr(a.name, a.value);
  }
  const seen = new Map<string, number>();
  const counts = new Map<string, number>();
  for (const c of elements) counts.set(c.nodeName, (counts.get(c.nodeName) ?? 0) + 1);
  for (const c of elements) {
    const n = seen.get(c.nodeName) ?? 0;
    seen.set(c.nodeName, n + 1);
    const indexed = ALWAYS_INDEXED.has(path) || (counts.get(c.nodeName) ?? 0) > 1;
    el.children.push(build(c, `${path}/${c.nodeName}${indexed ? `[${n}]` : ''}`, counter));
  }
  return el;
}

/** Parses `xml`; a document that is not well-formed is INVALID_ARG naming `source` and the parser's complaint. */
export function parseXml(xml: string, source: string): XmlElement {
  const complaints: string[] = [];
  let doc: { documentElement: DomNode | null } | undefined;
  try {
    doc = new DOMParser({
      // Stricter than a browser: any complaint, even a warning, means the file is not what it claims.
      onError: (level, msg) => {
        complaints.push(`${level === 'fatalError' ? 'error' : level}: ${msg.replace(/\s+/g, ' ').trim()}`);
        throw new Error(msg);
      },
    }).parseFromString(xml, 'text/xml') as unknown as { documentElement: DomNode | null };
  } catch (err) {
    if (complaints.length === 0) complaints.push((err as Error).message);
  }
  const root = doc?.documentElement ?? null;
  if (complaints.length > 0 || root === null) {
    throw new VirtqError('INVALID_ARG', `${source} is not well-formed XML: ${complaints[0] ?? 'no root element'}`, { details: { file: source } });
  }
  return build(root, `/${root.nodeName}`, { n: 0 });
}

/**
 * Everything of `root` not accounted for: an element nobody took (reported once, not its
 * insides), an attribute or text of a taken element nobody read. `reasonFor` says why for an
 * element (by its path and name); attributes get `attrReason`.
 */
export function leftovers(root: XmlElement, reasonFor: (el: XmlElement, parent: XmlElement) => string, attrReason: (el: XmlElement, attr: string) => string): PlacedLeftOut[] {
  const out: PlacedLeftOut[] = [];
  const walk = (el: XmlElement): void => {
    for (const a of el.untakenAttrs()) out.push({ path: `${el.path}/@${a}`, reason: attrReason(el, a), order: el.order });
    if (el.untakenText()) out.push({ path: `${el.path}/text()`, reason: `virtq has no equivalent of the text of <${el.name}>`, order: el.order });
    for (const c of el.children) {
      if (c.handled) walk(c);
      else out.push({ path: c.path, reason: reasonFor(c, el), order: c.order });
    }
  };
  walk(root);
  return out;
}
