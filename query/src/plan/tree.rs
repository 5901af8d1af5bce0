//! The plan tree of a statement: one [`PlanNode`] per operator, built while the statement is planned. A query
//! over one table is a [`Operator::Select`] (its [`SelectPlan`] and what its scan touched); queries built from
//! other queries add the operators that combine them: joins, UNION, named relations (WITH, subqueries in FROM)
//! and subqueries used as values. EXPLAIN prints the tree (`super::explain`).

use crate::plan::SelectPlan;
use crate::stats::ExecStats;

/// One operator of a statement's plan and the operators it reads.
#[derive(Debug, Clone)]
pub struct PlanNode {
    pub op: Operator,
    pub inputs: Vec<PlanNode>,
}

/// What a plan node does.
#[derive(Debug, Clone)]
pub enum Operator {
    /// A SELECT over one table (a catalog table or an in-memory relation computed by its inputs), with what its
    /// scan touched (under EXPLAIN without ANALYZE: pruning only, no rows read).
    Select {
        plan: Box<SelectPlan>,
        stats: Box<ExecStats>,
        /// The table is an in-memory relation (a WITH table, a subquery's or a join's rows), not the catalog's.
        in_memory: bool,
    },
    /// Relations joined by broadcast hash joins into one in-memory table of `rows` rows.
    Join { rows: usize },
    /// An inner join that only filters, answered as `key IN (right side's keys)`.
    SemiJoin,
    /// `UNION [ALL]` of its last `branches` inputs.
    Union { branches: usize },
    /// A relation computed first and read by name: `WITH name AS (...)`, a subquery in FROM.
    Relation { name: String },
    /// Window functions computed over its input's rows (`calls` of them), for the SELECT that reads them.
    Window { calls: usize },
    /// Output items with correlated subqueries (`items` of them), each run once per row of its input.
    Correlated { items: usize },
    /// A subquery used as a value (`IN (subquery)`, a scalar subquery), computed first and inlined as literals.
    Values,
}

impl PlanNode {
    pub fn new(op: Operator, inputs: Vec<PlanNode>) -> Self {
        PlanNode { op, inputs }
    }

    /// The same node reading `input` too, after its own inputs.
    pub fn with_input(mut self, input: PlanNode) -> Self {
        self.inputs.push(input);
        self
    }

    /// The same node with `first` read before its own inputs (the WITH tables a query defines).
    pub fn after(mut self, first: Vec<PlanNode>) -> Self {
        if !first.is_empty() {
            let own = std::mem::take(&mut self.inputs);
            self.inputs = first;
            self.inputs.extend(own);
        }
        self
    }
}
