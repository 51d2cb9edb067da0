// What a libvirt conversion could not carry over, as it goes: things left out (a lossy
// conversion may drop them) and things without which there is no definition at all.
import type { PlacedLeftOut, XmlElement } from './xml-tree.js';

/** One left-out item; `fatal` when no definition can be made without it. */
export interface Issue extends PlacedLeftOut {
  readonly fatal: boolean;
}

/** The issues of one conversion. */
export class Report {
  readonly issues: Issue[] = [];

  /** Leaves `el` (and all it holds) out, saying why. */
  drop(el: XmlElement, reason: string): void {
    this.issues.push({ path: el.path, reason, order: el.order, fatal: false });
    el.ignore();
  }

  /** Something about `el` that is not carried over although the element itself is. */
  note(el: XmlElement, reason: string): void {
    this.issues.push({ path: el.path, reason, order: el.order, fatal: false });
  }

  /** Leaves attribute `attr` of `el` out, saying why. */
  dropAttr(el: XmlElement, attr: string, reason: string): void {
    el.attr(attr);
    this.issues.push({ path: `${el.path}/@${attr}`, reason, order: el.order, fatal: false });
  }

  /** Something no definition can be made without: element `el` (and all it holds). */
  fatal(el: XmlElement, reason: string): void {
    this.issues.push({ path: el.path, reason, order: el.order, fatal: true });
    el.ignore();
  }

  /** Something no definition can be made without: attribute `attr` of `el`. */
  fatalAttr(el: XmlElement, attr: string, reason: string): void {
    el.attr(attr);
    this.issues.push({ path: `${el.path}/@${attr}`, reason, order: el.order, fatal: true });
  }

  /** A required element that is missing from `parent`. */
  missing(parent: XmlElement, name: string, reason: string): void {
    this.issues.push({ path: `${parent.path}/${name}`, reason, order: parent.order, fatal: true });
  }
}
