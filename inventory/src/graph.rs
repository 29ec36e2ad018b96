//! The group graph of an inventory, walked once: depths and cycles in one topological pass,
//! so a graph of shared children (a diamond per level) costs its size, not its paths.

use std::collections::{BTreeSet, HashMap};

use super::Inventory;

impl Inventory {
    /// Each group's depth below `all` (1 for a group no other group lists as a child; else
    /// one more than its deepest parent), in one pass over the children graph (Kahn's
    /// order): a graph of shared children (a diamond per level) costs its size, not the
    /// number of paths through it. `Err` names a group on a cycle.
    pub(super) fn depths(&self) -> Result<HashMap<&str, usize>, String> {
        let mut parents_left: HashMap<&str, usize> =
            self.groups.keys().map(|g| (g.as_str(), 0)).collect();
        for g in self.groups.values() {
            for child in &g.children {
                if let Some(n) = parents_left.get_mut(child.as_str()) {
                    *n += 1;
                }
            }
        }
        let mut depth: HashMap<&str, usize> = HashMap::new();
        let mut ready: Vec<&str> = parents_left
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(g, _)| *g)
            .collect();
        for g in &ready {
            depth.insert(g, 1);
        }
        while let Some(g) = ready.pop() {
            let d = depth.get(g).copied().unwrap_or(1);
            for child in self
                .groups
                .get(g)
                .map(|g| &g.children)
                .into_iter()
                .flatten()
            {
                let child = child.as_str();
                let entry = depth.entry(child).or_insert(0);
                *entry = (*entry).max(d + 1);
                if let Some(n) = parents_left.get_mut(child) {
                    *n -= 1;
                    if *n == 0 {
                        ready.push(child);
                    }
                }
            }
        }
        let left: BTreeSet<&str> = parents_left
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(g, _)| *g)
            .collect();
        let Some(first) = left.first() else {
            return Ok(depth);
        };
        // Every group left has a parent left: walking up from one comes back round a cycle.
        let mut parents: HashMap<&str, &str> = HashMap::new();
        for (p, pg) in &self.groups {
            if left.contains(p.as_str()) {
                for child in &pg.children {
                    parents.entry(child.as_str()).or_insert(p.as_str());
                }
            }
        }
        let parent_left = |g: &str| parents.get(g).copied();
        let mut walked = vec![*first];
        let mut at_step: HashMap<&str, usize> = HashMap::from([(*first, 0)]);
        let mut at = *first;
        while let Some(p) = parent_left(at) {
            if let Some(&i) = at_step.get(p) {
                let name = walked[i..].iter().min().copied().unwrap_or(p);
                return Err(name.to_owned());
            }
            at_step.insert(p, walked.len());
            walked.push(p);
            at = p;
        }
        Err((*first).to_owned())
    }
}
